// The door of every listener (src/connectors/listen.ts guardListener): what it counts at
// accept, how it says no, the descriptor reserve, and the HTTP timeouts it is built with.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect as netConnect, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { after, describe, it } from 'node:test';
import { Admission, type AdmissionLimits, type LimitCode } from '../../src/connectors/admission.js';
import { DescriptorBudget } from '../../src/connectors/descriptors.js';
import { closeServer, createHttpListener, createSocketServer, listen, openConnections } from '../../src/connectors/listen.js';
import { waitFor } from '../fixtures/wait.js';

const OFF: AdmissionLimits = { maxConnectionsPerIp: 0, connectsPerSecondPerIp: 0, maxPendingConnections: 0, requestsPerSecond: 0, exemptIps: [] };
const TIMEOUTS = { headersMs: 10_000, requestMs: 10_000, keepAliveMs: 5000 };

const peers: Peer[] = [];

/** A raw TCP client: what the server wrote to it and whether it closed. */
class Peer {
  readonly socket: Socket;
  data = '';
  closed = false;
  constructor(port: number, localAddress = '127.0.0.1') {
    peers.push(this);
    this.socket = netConnect({ host: '127.0.0.1', port, localAddress });
    this.socket.setEncoding('latin1');
    this.socket.on('data', (c: string) => (this.data += c));
    this.socket.on('error', () => undefined);
    this.socket.on('close', () => (this.closed = true));
  }
  async connected(): Promise<this> {
    await Promise.race([once(this.socket, 'connect'), once(this.socket, 'close')]);
    return this;
  }
  /** Sends a request and resolves with the answer once the server closes. */
  async ask(request: string): Promise<string> {
    this.socket.write(request);
    await waitFor(() => this.closed || /\r\n\r\n[\s\S]*\}$/.test(this.data), { timeoutMs: 5000, message: `an answer to ${request.split('\r\n')[0]}` });
    return this.data;
  }
  destroy(): void {
    this.socket.destroy();
  }
}

const opened: { close(): Promise<void> }[] = [];
after(async () => {
  for (const p of peers) p.destroy();
  for (const o of opened) await o.close();
});

async function serve(server: Server, admission?: Admission): Promise<number> {
  const port = await listen(server, '127.0.0.1', 0);
  opened.push({
    close: async () => {
      (server as Server & { closeAllConnections?: () => void }).closeAllConnections?.();
      await closeServer(server);
      admission?.close();
    },
  });
  return port;
}

function reports(): { admission: (limits: Partial<AdmissionLimits>, budget?: DescriptorBudget) => Admission; seen: [string, LimitCode, string][] } {
  const seen: [string, LimitCode, string][] = [];
  return {
    seen,
    admission: (limits, budget) => new Admission({ ...OFF, ...limits }, Date.now, { descriptors: budget, report: (l, c, a) => seen.push([l, c, a]) }),
  };
}

describe('listen: openConnections', () => {
  it("reads net.Server's count of accepted, unclosed sockets (fails loudly if Node moves it)", async () => {
    const server = createSocketServer(() => undefined);
    const port = await serve(server);
    const peers = await Promise.all([0, 1, 2].map(async () => new Peer(port).connected()));
    await waitFor(() => openConnections(server) === 3, { timeoutMs: 2000, message: '3 sockets counted' });
    for (const p of peers) p.destroy();
    await waitFor(() => openConnections(server) === 0, { timeoutMs: 2000, message: 'closes counted' });
  });
});

describe('listen: the door of an HTTP listener', () => {
  it('counts TCP connections per address and answers the one over the cap 429 before reading it; a close makes room', async () => {
    const { admission, seen } = reports();
    const a = admission({ maxConnectionsPerIp: 2 });
    const server = createHttpListener((_req, res) => res.end('{"ok":true}'), { name: 'web', timeouts: TIMEOUTS, admission: a });
    const port = await serve(server, a);
    const held = [await new Peer(port).connected(), await new Peer(port).connected()];
    const third = await new Peer(port).connected();
    await waitFor(() => third.closed, { timeoutMs: 2000, message: 'the third to be refused' });
    assert.match(third.data, /^HTTP\/1\.1 429 Too Many Requests\r\n/);
    assert.match(third.data, /retry-after: 1\r\n/);
    assert.match(third.data, /\{"code":"LIMIT_CONNECTIONS_PER_IP","message":"too many connections from this address"\}$/);
    assert.deepEqual(seen, [['web', 'LIMIT_CONNECTIONS_PER_IP', '127.0.0.1']]);
    // Another address has its own count; and the held ones are served as usual.
    const other = await new Peer(port, '127.0.0.3').connected();
    assert.match(await other.ask('GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n'), /^HTTP\/1\.1 200 OK/);
    held[0]!.destroy();
    await waitFor(() => openConnections(server) <= 1, { timeoutMs: 2000, message: 'the close seen' });
    const fourth = await new Peer(port).connected();
    assert.match(await fourth.ask('GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n'), /^HTTP\/1\.1 200 OK/);
    held[1]!.destroy();
  });

  it('counts the connect rate of the port per address', async () => {
    const { admission } = reports();
    const a = admission({ connectsPerSecondPerIp: 0.001 });
    const server = createHttpListener((_req, res) => res.end('{}'), { name: 'web', timeouts: TIMEOUTS, admission: a });
    const port = await serve(server, a);
    const first = await new Peer(port).connected();
    const second = await new Peer(port).connected();
    await waitFor(() => second.closed, { timeoutMs: 2000, message: 'refused' });
    assert.match(second.data, /"code":"LIMIT_CONNECT_RATE"/);
    first.destroy();
  });

  it('closes a connection that sends no request within headersMs', async () => {
    const server = createHttpListener((_req, res) => res.end('{}'), { name: 'web', timeouts: { headersMs: 300, requestMs: 1000, keepAliveMs: 300 } });
    const port = await serve(server);
    const silent = await new Peer(port).connected();
    await waitFor(() => silent.closed, { timeoutMs: 3000, message: 'the silent connection to be closed' });
    assert.match(silent.data, /^HTTP\/1\.1 408/);
    // And an idle keep-alive connection after its answer.
    const kept = await new Peer(port).connected();
    kept.socket.write('GET / HTTP/1.1\r\nhost: x\r\n\r\n');
    await waitFor(() => kept.closed, { timeoutMs: 3000, message: 'the idle keep-alive connection to be closed' });
    assert.match(kept.data, /^HTTP\/1\.1 200 OK/);
  });
});

describe('listen: the descriptor reserve', () => {
  /** A budget of 100 descriptors, a reserve of 20, and `others` descriptors that are not the listeners' sockets. */
  function budget(): { budget: DescriptorBudget; others: { n: number }; clock: { now: number } } {
    const others = { n: 0 };
    const clock = { now: 1_000_000 };
    const b: DescriptorBudget = new DescriptorBudget({ limit: 100, reserve: 20, countOpen: () => others.n + b.sockets(), now: () => clock.now });
    return { budget: b, others, clock };
  }

  it('computes the clients’ ceiling and the hard ceiling from the limit and the reserve (at most a quarter)', () => {
    const { budget: b } = budget();
    assert.deepEqual([b.reserve, b.clientCeiling, b.hardCeiling], [20, 80, 95]);
    const capped = new DescriptorBudget({ limit: 256, reserve: 128, countOpen: () => 0 });
    assert.deepEqual([capped.reserve, capped.clientCeiling, capped.hardCeiling], [64, 192, 240]);
  });

  it('past the clients’ share, the HTTP port serves only the reserved requests, four connections per address; stream ports close; at the edge nothing is let in', async () => {
    const { budget: b, others, clock } = budget();
    const { admission, seen } = reports();
    const a = admission({}, b);
    const server = createHttpListener((_req, res) => res.end('{"ok":true}'), {
      name: 'web',
      timeouts: TIMEOUTS,
      admission: a,
      reserve: (method, path) => method === 'GET' && path === '/healthz',
    });
    const port = await serve(server, a);
    const stream = createSocketServer(() => undefined, { name: 'tcp', admission: a });
    const streamPort = await serve(stream, a);

    // Room for clients: served as usual.
    others.n = 10;
    const client = await new Peer(port).connected();
    assert.match(await client.ask('GET /anything HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n'), /^HTTP\/1\.1 200 OK/);

    // The clients' share is used up: 85 descriptors in use with the next socket.
    others.n = 84;
    clock.now += 20_000;
    const refusedStream = await new Peer(streamPort).connected();
    await waitFor(() => refusedStream.closed, { timeoutMs: 2000, message: 'the stream port to close the connection' });
    assert.equal(refusedStream.data, '');
    const health = await new Peer(port).connected();
    const healthAnswer = await health.ask('GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n');
    assert.match(healthAnswer, /^HTTP\/1\.1 200 OK/);
    assert.match(healthAnswer, /connection: close/i, 'a reserve connection is closed after its answer');
    const api = await new Peer(port).connected();
    const apiAnswer = await api.ask('GET /api HTTP/1.1\r\nhost: x\r\n\r\n');
    assert.match(apiAnswer, /^HTTP\/1\.1 503 Service Unavailable/);
    assert.match(apiAnswer, /"code":"LIMIT_DESCRIPTORS"/);
    // Four reserve connections per address at once.
    const holders = [await new Peer(port).connected(), await new Peer(port).connected(), await new Peer(port).connected(), await new Peer(port).connected()];
    const fifth = await new Peer(port).connected();
    await waitFor(() => fifth.closed, { timeoutMs: 2000, message: 'the fifth reserve connection of one address to be closed' });
    assert.ok(holders.every((h) => !h.closed));
    for (const h of holders) h.destroy();

    // The edge: nothing, not even an answer.
    others.n = 96;
    clock.now += 20_000;
    const edge = await new Peer(port).connected();
    await waitFor(() => edge.closed, { timeoutMs: 2000, message: 'closed at the edge' });
    assert.equal(edge.data, '');
    assert.deepEqual(
      [...new Set(seen.map(([l, c]) => `${l} ${c}`))].sort(),
      ['tcp LIMIT_DESCRIPTORS', 'web LIMIT_DESCRIPTORS'],
      'every refusal reported, with its listener',
    );
  });
});

describe('listen: the descriptor reserve over TLS', () => {
  it('knows a reserve connection under its TLS socket: only the reserved requests pass', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'shaddock-listen-tls-'));
    let tls: { cert: Buffer; key: Buffer; handshakeTimeoutMs: number };
    try {
      execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', join(dir, 'k.pem'), '-out', join(dir, 'c.pem'), '-days', '1', '-subj', '/CN=localhost'], { stdio: 'ignore' });
      tls = { cert: readFileSync(join(dir, 'c.pem')), key: readFileSync(join(dir, 'k.pem')), handshakeTimeoutMs: 5000 };
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    // Always in the reserve: 90 of 100 descriptors are the process's own.
    const b: DescriptorBudget = new DescriptorBudget({ limit: 100, reserve: 20, countOpen: () => 90 + b.sockets() });
    const a = new Admission(OFF, Date.now, { descriptors: b });
    const server = createHttpListener((_req, res) => res.end('{"ok":true}'), {
      name: 'web',
      timeouts: TIMEOUTS,
      tls,
      admission: a,
      reserve: (method, path) => method === 'GET' && path === '/healthz',
    });
    const port = await serve(server, a);
    const ask = (path: string): Promise<string> =>
      new Promise((resolve, reject) => {
        const c = tlsConnect({ host: '127.0.0.1', port, rejectUnauthorized: false }, () => c.write(`GET ${path} HTTP/1.1\r\nhost: x\r\n\r\n`));
        let data = '';
        c.setEncoding('latin1');
        c.on('data', (d: string) => (data += d));
        c.on('error', reject);
        c.on('close', () => resolve(data));
      });
    assert.match(await ask('/healthz'), /^HTTP\/1\.1 200 OK/);
    const refused = await ask('/api');
    assert.match(refused, /^HTTP\/1\.1 503 /);
    assert.match(refused, /"code":"LIMIT_DESCRIPTORS"/);
  });
});
