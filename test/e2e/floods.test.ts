// Floods from one address against every HTTP-speaking port (docs/security.md#limits),
// against `shaddock start` in a child process so that its memory and descriptors are
// its own: idle TCP connections to the HTTP port and the socket.io port, engine.io
// polling sessions over a few keep-alive connections, and — with a low `ulimit -n` —
// connections from many ports until the process nears its open-files limit. Each
// time `/healthz` answers, the refusals are counted in /metrics and logged a few lines
// at a time, and a client from another address enters and receives.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { readFileSync, mkdtempSync, rmSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { connect as netConnect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { io as ioV4 } from 'socket.io-client';
import { WebSocket } from 'ws';
import { startCli, stopCli, type CliProcess } from '../fixtures/cli-process.js';
import { startTestServer } from '../fixtures/test-server.js';
import { waitFor, withTimeout } from '../fixtures/wait.js';

const ADMIN_PASSWORD = 'flood-test-admin';
const FLOODER = '127.0.0.2';
/** The polling flood's address: the idle flood's closes need not have reached the server. */
const POLLER = '127.0.0.4';
const SOMEONE_ELSE = '127.0.0.3';

interface Node {
  readonly proc: CliProcess;
  readonly dataDir: string;
  readonly http: number;
  readonly sio: number;
  readonly hybrid: number;
  readonly app: { readonly apikey: string; readonly secret: string };
}

async function startNode(env: NodeJS.ProcessEnv, openFiles?: number): Promise<Node> {
  const dataDir = mkdtempSync(join(tmpdir(), 'shaddock-flood-'));
  const proc = await startCli(
    [],
    {
      SHADDOCK_DATA: dataDir,
      SHADDOCK_HOST: '127.0.0.1',
      SHADDOCK_HTTP_PORT: '0',
      SHADDOCK_SIO_PORT: '0',
      SHADDOCK_HYBRID_PORT: '0',
      SHADDOCK_MQTT_PORT: '0',
      SHADDOCK_ADMIN_PASSWORD: ADMIN_PASSWORD,
      SHADDOCK_LOG_CONNECTIONS: 'false',
      // Empty: no exempt address, so that the loopback flooder is counted (docs/security.md).
      SHADDOCK_LIMITS_EXEMPT_IPS: '',
      ...env,
    },
    undefined,
    openFiles === undefined ? {} : { openFiles },
  );
  const port = (re: RegExp): number => Number(re.exec(proc.banner)?.[1] ?? NaN);
  const http = port(/HTTP API\s+http:\/\/127\.0\.0\.1:(\d+)/);
  const node = {
    proc,
    dataDir,
    http,
    sio: port(/socket\.io\s+http:\/\/127\.0\.0\.1:(\d+)/),
    hybrid: port(/Pomelo hybrid\s+tcp:\/\/127\.0\.0\.1:(\d+)/),
    app: { apikey: /apikey\s+(\S+)/.exec(proc.banner)?.[1] ?? '', secret: /secret\s+(\S+)/.exec(proc.banner)?.[1] ?? '' },
  };
  assert.ok(node.http > 0 && node.sio > 0 && node.hybrid > 0 && node.app.secret !== '', `ports and demo app in the banner:\n${proc.banner}`);
  return node;
}

async function stopNode(node: Node | undefined): Promise<void> {
  if (node === undefined) return;
  await stopCli(node.proc);
  rmSync(node.dataDir, { recursive: true, force: true });
}

/** Resident memory of a process, bytes. */
function rss(pid: number): number {
  const kb = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
  return Number(kb) * 1024;
}

/** One plain HTTP GET from 127.0.0.1 on a fresh connection: status and body. */
async function get(port: number, path: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  return withTimeout(
    new Promise((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, path, headers, agent: false }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      });
      req.on('error', reject);
      req.end();
    }),
    5000,
    `GET ${path}`,
  );
}

async function metric(node: Node, name: string, labels: string): Promise<number> {
  const { status, body } = await get(node.http, '/metrics');
  assert.equal(status, 200);
  const line = body.split('\n').find((l) => l.startsWith(`${name}{${labels}}`));
  return line === undefined ? 0 : Number(line.slice(line.lastIndexOf(' ') + 1));
}

/** Idle TCP connections from `localAddress`: those the server keeps, and those it refused (answered and closed). */
class IdleFlood {
  readonly sockets: Socket[] = [];
  refused = 0;
  readonly answers = new Map<string, number>();

  async open(port: number, count: number, localAddress: string): Promise<void> {
    for (let i = 0; i < count; i += 100) {
      const batch: Promise<unknown>[] = [];
      for (let j = i; j < Math.min(count, i + 100); j++) {
        const s = netConnect({ host: '127.0.0.1', port, localAddress });
        this.sockets.push(s);
        let first = '';
        s.setEncoding('latin1');
        s.on('data', (c: string) => {
          if (first === '') {
            first = c;
            const code = /"code":"([A-Z_]+)"/.exec(c)?.[1] ?? c.slice(0, 12);
            this.answers.set(code, (this.answers.get(code) ?? 0) + 1);
          }
        });
        s.on('error', () => undefined);
        s.once('close', () => this.refused++);
        batch.push(Promise.race([once(s, 'connect'), once(s, 'close')]));
      }
      await Promise.all(batch);
    }
  }

  get open_(): number {
    return this.sockets.length - this.refused;
  }

  async close(): Promise<void> {
    await Promise.all(
      this.sockets.map(async (s) => {
        if (s.destroyed) return;
        const closed = once(s, 'close');
        s.destroy();
        await closed;
      }),
    );
  }
}

/** A plain-WebSocket client from `localAddress` that enters; resolves once entered. */
async function wsClient(node: Node, clientId: string, localAddress: string): Promise<WebSocket> {
  const ws = new WebSocket(`ws://127.0.0.1:${node.http}/ws`, { localAddress });
  await withTimeout(once(ws, 'open'), 5000, 'ws open');
  ws.send(JSON.stringify({ type: 'enter', apikey: node.app.apikey, clientId }));
  const [raw] = (await withTimeout(once(ws, 'message'), 5000, 'ws entered')) as [Buffer];
  assert.equal((JSON.parse(raw.toString()) as { type: string }).type, 'entered', raw.toString());
  return ws;
}

async function push(node: Node, clientId: string, data: unknown): Promise<void> {
  const res = await fetch(`http://127.0.0.1:${node.http}/api/v1/apps/${node.app.apikey}/messages`, {
    method: 'POST',
    headers: { authorization: `Bearer ${node.app.secret}`, 'content-type': 'application/json' },
    body: JSON.stringify({ event: 'onMsg', data, to: { clientIds: [clientId] } }),
  });
  assert.equal(res.status, 202, await res.text());
}

/** Someone else (127.0.0.3) enters on /ws and on socket.io, and receives a push on each. */
async function someoneElseEntersAndReceives(node: Node): Promise<void> {
  const ws = await wsClient(node, 'other-ws', SOMEONE_ELSE);
  const wsMessage = new Promise<{ data: unknown }>((resolve) =>
    ws.on('message', (raw: Buffer) => {
      const frame = JSON.parse(raw.toString()) as { type: string; data: unknown };
      if (frame.type === 'message') resolve(frame);
    }),
  );
  await push(node, 'other-ws', { n: 1 });
  assert.deepEqual((await withTimeout(wsMessage, 5000, 'ws push')).data, { n: 1 });
  ws.close();

  const sio = ioV4(`http://127.0.0.1:${node.sio}`, { transports: ['polling', 'websocket'], reconnection: false, forceNew: true, localAddress: SOMEONE_ELSE } as never);
  try {
    await withTimeout(new Promise<void>((resolve) => sio.once('connect', () => resolve())), 5000, 'socket.io connect');
    const entered = (await sio.timeout(5000).emitWithAck('enter', { apikey: node.app.apikey, clientId: 'other-sio' })) as { code: number };
    assert.equal(entered.code, 200);
    const received = new Promise<{ data: unknown }>((resolve) => sio.on('onMsg', (m: { data: unknown }) => resolve(m)));
    await push(node, 'other-sio', { n: 2 });
    assert.deepEqual((await withTimeout(received, 5000, 'socket.io push')).data, { n: 2 });
  } finally {
    sio.disconnect();
  }
}

describe('floods from one address: idle connections to the HTTP and socket.io ports, engine.io polling sessions', () => {
  const CAP = 150;
  const IDLE = 1200;
  let node: Node | undefined;
  const floods: IdleFlood[] = [];
  before(async () => {
    node = await startNode({
      SHADDOCK_MAX_CONNECTIONS_PER_IP: String(CAP),
      SHADDOCK_CONNECTS_PER_SECOND_PER_IP: '0',
      SHADDOCK_HANDSHAKE_TIMEOUT: '60',
    });
  });
  after(async () => {
    for (const f of floods) await f.close();
    await stopNode(node);
  });

  it(`keeps ${CAP} idle connections per port from the address and answers the rest 429 LIMIT_CONNECTIONS_PER_IP`, async () => {
    const n = node!;
    const rssBefore = rss(n.proc.child.pid!);
    for (const port of [n.http, n.sio]) {
      const flood = new IdleFlood();
      floods.push(flood);
      await flood.open(port, IDLE, FLOODER);
      await waitFor(() => flood.refused >= IDLE - CAP, { timeoutMs: 20_000, message: `refusals on port ${port}: ${flood.refused}` });
      assert.equal(flood.open_, CAP, `port ${port}: connections the server keeps`);
      assert.deepEqual([...flood.answers], [['LIMIT_CONNECTIONS_PER_IP', IDLE - CAP]], 'every refused one got the HTTP answer with the code');
    }
    assert.equal(await metric(n, 'shaddock_listener_refusals_total', 'listener="http",reason="LIMIT_CONNECTIONS_PER_IP"'), IDLE - CAP);
    assert.equal(await metric(n, 'shaddock_listener_refusals_total', 'listener="sio",reason="LIMIT_CONNECTIONS_PER_IP"'), IDLE - CAP);
    const health = await get(n.http, '/healthz');
    assert.equal(health.status, 200);
    await someoneElseEntersAndReceives(n);
    // A few lines in the log, not one per refusal (refusal-log.ts).
    const lines = n.proc.stdout().split('\n').filter((l) => l.includes('connections refused at the limits'));
    assert.ok(lines.length >= 2 && lines.length <= 6, `refusal log lines: ${lines.length}`);
    assert.ok(rss(n.proc.child.pid!) - rssBefore < 64 * 1024 * 1024, 'RSS growth bounded');
  });

  it('counts engine.io polling sessions per address, however few connections carry them', async () => {
    const n = node!;
    for (const f of floods.splice(0)) await f.close();
    const rssBefore = rss(n.proc.child.pid!);
    // Four keep-alive connections carry every handshake: counting sockets alone would let them all in.
    const agent = new Agent({ keepAlive: true, maxSockets: 4, localAddress: POLLER });
    const HANDSHAKES = 3000;
    const statuses = new Map<string, number>();
    const handshake = (): Promise<void> =>
      new Promise((resolve, reject) => {
        const req = request({ host: '127.0.0.1', port: n.sio, path: '/socket.io/?EIO=4&transport=polling', agent }, (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => (body += c));
          res.on('end', () => {
            const key = res.statusCode === 200 ? '200' : `${res.statusCode} ${/"message":"([A-Z_]+)/.exec(body)?.[1] ?? body}`;
            statuses.set(key, (statuses.get(key) ?? 0) + 1);
            resolve();
          });
        });
        req.on('error', reject);
        req.end();
      });
    try {
      for (let i = 0; i < HANDSHAKES; i += 50) await Promise.all(Array.from({ length: 50 }, handshake));
    } finally {
      agent.destroy();
    }
    assert.deepEqual(
      Object.fromEntries(statuses),
      { '200': CAP, '403 LIMIT_CONNECTIONS_PER_IP': HANDSHAKES - CAP },
      'sessions past the per-address cap are refused at the handshake, none created',
    );
    assert.equal(await metric(n, 'shaddock_listener_refusals_total', 'listener="sio",reason="LIMIT_CONNECTIONS_PER_IP"'), IDLE - CAP + HANDSHAKES - CAP);
    // The sessions let in are pending (not entered) and count until they close.
    assert.equal((await get(n.http, '/healthz')).status, 200);
    await someoneElseEntersAndReceives(n);
    assert.ok(rss(n.proc.child.pid!) - rssBefore < 64 * 1024 * 1024, 'RSS growth bounded');
  });
});

describe('the descriptor reserve: a process near its open-files limit', () => {
  const OPEN_FILES = 256;
  let node: Node | undefined;
  const flood = new IdleFlood();
  before(async () => {
    node = await startNode(
      {
        // No per-address limit: only the descriptors stop this flood.
        SHADDOCK_MAX_CONNECTIONS_PER_IP: '0',
        SHADDOCK_CONNECTS_PER_SECOND_PER_IP: '0',
        SHADDOCK_MAX_PENDING_CONNECTIONS: '0',
        SHADDOCK_HANDSHAKE_TIMEOUT: '60',
        SHADDOCK_DESCRIPTOR_RESERVE: '64',
      },
      OPEN_FILES,
    );
  });
  after(async () => {
    await flood.close();
    await stopNode(node);
  });

  it('refuses clients before the limit, and /healthz, /metrics and admin login still answer', async () => {
    const n = node!;
    // More connections than the process has descriptors, on every kind of port.
    await flood.open(n.http, 150, FLOODER);
    await flood.open(n.sio, 150, FLOODER);
    await flood.open(n.hybrid, 150, FLOODER);
    await waitFor(() => flood.refused >= 450 - (OPEN_FILES - 64), { timeoutMs: 20_000, message: `refused: ${flood.refused}` });
    assert.ok(flood.open_ <= OPEN_FILES - 64, `the server holds ${flood.open_} flood connections, at most its clients' share`);
    assert.ok((flood.answers.get('LIMIT_DESCRIPTORS') ?? 0) > 0, `HTTP refusals say why: ${JSON.stringify([...flood.answers])}`);
    // The reserve: health, metrics and login from an operator.
    const health = await get(n.http, '/healthz');
    assert.equal(health.status, 200, health.body);
    let counted = 0;
    for (const listener of ['hybrid', 'sio', 'http']) {
      counted += await metric(n, 'shaddock_listener_refusals_total', `listener="${listener}",reason="LIMIT_DESCRIPTORS"`);
    }
    assert.equal(counted, flood.refused, 'every refusal counted in /metrics');
    const login = await fetch(`http://127.0.0.1:${n.http}/api/v1/session`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', connection: 'close' },
      body: JSON.stringify({ username: 'admin', password: ADMIN_PASSWORD }),
    });
    assert.equal(login.status, 200, await login.text());
    // The rest of the API is not for the reserve.
    const pushed = await fetch(`http://127.0.0.1:${n.http}/api/v1/apps/${n.app.apikey}/messages`, {
      method: 'POST',
      headers: { authorization: `Bearer ${n.app.secret}`, 'content-type': 'application/json', connection: 'close' },
      body: JSON.stringify({ data: 1 }),
    });
    assert.equal(pushed.status, 503);
    assert.equal(((await pushed.json()) as { code: string }).code, 'LIMIT_DESCRIPTORS');
    const lines = n.proc.stdout().split('\n').filter((l) => l.includes('near its open-files limit'));
    assert.ok(lines.length >= 1 && lines.length <= 8, `descriptor refusal log lines: ${lines.length}`);

    // Once the flood leaves, clients get in again.
    await flood.close();
    await waitFor(async () => (await get(n.http, '/healthz')).status === 200, { timeoutMs: 5000, message: 'healthz' });
    await someoneElseEntersAndReceives(n);
  });
});

describe('HTTP timeouts on both HTTP ports', () => {
  it('closes a connection that sends no request within handshakeTimeoutSeconds, on the API port and the socket.io port', async () => {
    const t = await startTestServer({ handshakeTimeoutSeconds: 1 });
    try {
      const flood = new IdleFlood();
      await flood.open(t.server.httpPort, 1, '127.0.0.1');
      await flood.open(t.server.sioPort, 1, '127.0.0.1');
      await waitFor(() => flood.refused === 2, { timeoutMs: 4000, message: 'both silent connections to be closed' });
      // The API port answers node's request timeout in the API's shape (408 {code, message}); socket.io's port closes.
      assert.deepEqual([...flood.answers.keys()], ['REQUEST_TIMEOUT']);
    } finally {
      await t.close();
    }
  });

  it('closes a WebSocket upgrade to the hybrid port whose headers never end', async () => {
    const t = await startTestServer({ handshakeTimeoutSeconds: 1 });
    const s = netConnect({ host: '127.0.0.1', port: t.server.hybridPort });
    try {
      s.on('error', () => undefined);
      await once(s, 'connect');
      s.write('GET / HTTP/1.1\r\nhost: x\r\n');
      const closed = once(s, 'close');
      // A header line at a time, never the blank line that ends them.
      const drip = setInterval(() => s.write('x-drip: 1\r\n'), 200);
      try {
        await withTimeout(closed, 4000, 'the dripping upgrade to be closed');
      } finally {
        clearInterval(drip);
      }
    } finally {
      s.destroy();
      await t.close();
    }
  });
});
