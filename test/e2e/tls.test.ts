// TLS on every listener (docs/tls.md), with real clients against a certificate chain
// made here with the openssl CLI: a root CA the clients trust, an intermediate, and a
// leaf for 127.0.0.1 signed by the intermediate. The server is given the leaf and the
// intermediate (tlsCaFile), so a client that trusts only the root proves the chain is sent.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { promisify } from 'node:util';
import mqtt from 'mqtt';
import { generate } from 'mqtt-packet';
import { io as ioV4, type Socket as SocketV4 } from 'socket.io-client';
import { WebSocket } from 'ws';
import { createNodeClient } from '../../src/client/node.js';
import { ConfigError, loadConfig } from '../../src/config.js';
import { startServer } from '../../src/server.js';
import { PomeloClient, reference } from '../fixtures/pomelo-client.js';
import { startTestServer, type TestServer } from '../fixtures/test-server.js';
import { waitFor, withTimeout } from '../fixtures/wait.js';

const run = promisify(execFile);
const ROOT = new URL('../..', import.meta.url).pathname;
const require = createRequire(import.meta.url);

/** The part of a socket.io-client 2.x socket used here (the package has no types). */
interface V2Socket {
  on(event: string, listener: (...args: unknown[]) => void): unknown;
  emit(event: string, ...args: unknown[]): unknown;
  close(): unknown;
}
const ioV2 = require('socket.io-client-v2') as (url: string, opts: Readonly<Record<string, unknown>>) => V2Socket;

// ------------------------------------------------------------------ certificates

interface Certificates {
  readonly dir: string;
  /** The root CA, the only thing clients trust. */
  readonly rootPem: string;
  readonly rootFile: string;
  readonly intermediateFile: string;
  readonly leafFile: string;
  readonly leafKeyFile: string;
  /** A key that is not the leaf's. */
  readonly otherKeyFile: string;
}

function openssl(dir: string, args: readonly string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
}

/** Root → intermediate → leaf (127.0.0.1, localhost), EC P-256, valid two days. */
function makeCertificates(): Certificates {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
  } catch (err) {
    throw new Error('these tests need the openssl CLI (Debian: apt-get install openssl)', { cause: err });
  }
  const dir = mkdtempSync(join(tmpdir(), 'shaddock-tls-'));
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  writeFileSync(join(dir, 'ca.ext'), 'basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\n');
  writeFileSync(
    join(dir, 'leaf.ext'),
    'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature\nbasicConstraints=CA:FALSE\n',
  );
  openssl(dir, ['req', '-x509', ...ec, '-keyout', 'root.key', '-out', 'root.pem', '-days', '2', '-subj', '/CN=Shaddock Test Root CA']);
  openssl(dir, ['req', '-new', ...ec, '-keyout', 'int.key', '-out', 'int.csr', '-subj', '/CN=Shaddock Test Intermediate CA']);
  openssl(dir, ['x509', '-req', '-in', 'int.csr', '-CA', 'root.pem', '-CAkey', 'root.key', '-set_serial', '2', '-days', '2', '-out', 'int.pem', '-extfile', 'ca.ext']);
  openssl(dir, ['req', '-new', ...ec, '-keyout', 'leaf.key', '-out', 'leaf.csr', '-subj', '/CN=localhost']);
  openssl(dir, ['x509', '-req', '-in', 'leaf.csr', '-CA', 'int.pem', '-CAkey', 'int.key', '-set_serial', '3', '-days', '2', '-out', 'leaf.pem', '-extfile', 'leaf.ext']);
  return {
    dir,
    rootPem: readFileSync(join(dir, 'root.pem'), 'utf8'),
    rootFile: join(dir, 'root.pem'),
    intermediateFile: join(dir, 'int.pem'),
    leafFile: join(dir, 'leaf.pem'),
    leafKeyFile: join(dir, 'leaf.key'),
    otherKeyFile: join(dir, 'int.key'),
  };
}

// ------------------------------------------------------------------ helpers

/** Pushes through the HTTPS API with curl, trusting only the root CA. */
async function curlPush(t: TestServer, certs: Certificates, data: unknown): Promise<{ id: number; targeted: number }> {
  const { stdout } = await run('curl', [
    '-sS',
    '--fail-with-body',
    '--cacert',
    certs.rootFile,
    '-X',
    'POST',
    `${t.httpUrl}/api/v1/apps/${t.app.apikey}/messages`,
    '-H',
    `authorization: Bearer ${t.app.secret}`,
    '-H',
    'content-type: application/json',
    '-d',
    JSON.stringify({ data }),
  ]);
  return JSON.parse(stdout) as { id: number; targeted: number };
}

/** A child process we started, its output so far, and its exit. */
interface Child {
  readonly child: ChildProcess;
  stdout: string;
  stderr: string;
  readonly exit: Promise<number | null>;
}

function startChild(cmd: string, args: readonly string[]): Child {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const c: Child = {
    child,
    stdout: '',
    stderr: '',
    exit: new Promise((resolve) => child.on('close', (code) => resolve(code))),
  };
  child.stdout?.on('data', (chunk: Buffer) => (c.stdout += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (c.stderr += chunk.toString()));
  return c;
}

async function stopChild(c: Child): Promise<void> {
  if (c.child.exitCode === null && c.child.signalCode === null) c.child.kill();
  await withTimeout(c.exit, 5000, `${c.child.spawnfile} to exit`);
}

function isOnline(t: TestServer, clientId: string, connector: string): boolean {
  return t.server.hub.onlineClients(t.app.apikey).some((c) => c.clientId === clientId && c.connector === connector);
}

/** The client side of Pomelo's sio framing (docs/pomelo-protocol.md §11.3), as the seed's Android app builds it. */
function pomeloSioFrame(id: number, route: string, body: unknown): string {
  const header = String.fromCharCode((id >>> 24) & 0xff, (id >>> 16) & 0xff, (id >>> 8) & 0xff, id & 0xff, route.length);
  return header + route + JSON.stringify(body);
}

/** Opens plain TCP to a port, writes `bytes`, and resolves with what came back once the server closes it. */
function plainTcp(port: number, bytes: Buffer): { readonly socket: net.Socket; readonly closed: Promise<Buffer> } {
  const socket = net.connect({ host: '127.0.0.1', port });
  const chunks: Buffer[] = [];
  socket.on('data', (c: Buffer) => chunks.push(c));
  socket.on('error', () => undefined);
  if (bytes.length > 0) socket.on('connect', () => socket.write(bytes));
  const closed = new Promise<Buffer>((resolve) => socket.on('close', () => resolve(Buffer.concat(chunks))));
  return { socket, closed };
}

// ------------------------------------------------------------------ the tests

describe('TLS on every listener', () => {
  let certs: Certificates;
  let t: TestServer;
  before(async () => {
    certs = makeCertificates();
    t = await startTestServer({ tlsCertFile: certs.leafFile, tlsKeyFile: certs.leafKeyFile, tlsCaFile: certs.intermediateFile });
  });
  after(async () => {
    await t?.close();
    if (certs) rmSync(certs.dir, { recursive: true, force: true });
  });

  it('every port sends the chain (leaf and intermediate); a client trusting only the root verifies it', async () => {
    const ports = { http: t.server.httpPort, hybrid: t.server.hybridPort, sio: t.server.sioPort, mqtt: t.server.mqttPort ?? 0 };
    for (const [name, port] of Object.entries(ports)) {
      const socket = tls.connect({ host: '127.0.0.1', port, ca: certs.rootPem });
      await withTimeout(new Promise<void>((resolve, reject) => {
        socket.once('secureConnect', () => resolve());
        socket.once('error', reject);
      }), 10_000, `TLS handshake with the ${name} port`);
      assert.equal(socket.authorized, true, `${name}: ${String(socket.authorizationError)}`);
      const peer = socket.getPeerCertificate(true);
      assert.equal(peer.subject.CN, 'localhost', name);
      assert.equal(peer.issuer.CN, 'Shaddock Test Intermediate CA', name);
      socket.destroy();
    }
    const health = (await run('curl', ['-sS', '--cacert', certs.rootFile, `${t.httpUrl}/healthz`])).stdout;
    assert.equal((JSON.parse(health) as { tls: unknown }).tls, true);
  });

  it('a real client of every connector receives a push made over HTTPS', async () => {
    const apikey = t.app.apikey;
    const got = new Map<string, unknown[]>();
    const record = (who: string, data: unknown): void => {
      got.set(who, [...(got.get(who) ?? []), data]);
    };
    const closers: (() => Promise<void>)[] = [];
    try {
      // Pomelo hybrid over raw TLS and over WSS, on the reference pomelo-protocol codec.
      for (const transport of ['tcp', 'ws'] as const) {
        const who = `hybrid-${transport}`;
        const c = await PomeloClient.connect({ host: '127.0.0.1', port: t.server.hybridPort, transport, tls: { ca: certs.rootPem }, requestTimeoutMs: 10_000 });
        closers.push(() => c.close());
        c.on('push', (route: string, body: unknown) => {
          if (route === 'onMsg') record(who, (body as { msg: unknown }).msg);
        });
        assert.deepEqual(await c.request('connector.entryHandler.enter', { apikey, clientId: who, role: 'client' }), { code: 200, msg: 'add ok' });
      }

      // The client SDK from Node: tls:// and wss://.
      for (const scheme of ['tls', 'wss'] as const) {
        const who = `sdk-${scheme}`;
        const c = createNodeClient({ urls: `${scheme}://127.0.0.1:${t.server.hybridPort}`, apikey, clientId: who, tls: { ca: certs.rootPem }, reconnect: false });
        c.on('message', (m) => record(who, m.data));
        await c.connect();
        closers.push(() => c.close());
      }

      // socket.io-client 4 (native API), polling upgraded to WebSocket, over HTTPS/WSS.
      const s4: SocketV4 = ioV4(`https://127.0.0.1:${t.server.sioPort}`, { ca: certs.rootPem, reconnection: false, forceNew: true, timeout: 10_000 });
      closers.push(async () => {
        s4.disconnect();
      });
      s4.onAny((event: string, ...args: unknown[]) => {
        const p = args[0] as { data?: unknown } | undefined;
        if (event === 'onMsg') record('sio-v4', p?.data);
        const ack = args[1];
        if (typeof ack === 'function') (ack as () => void)();
      });
      await withTimeout(new Promise<void>((resolve, reject) => {
        s4.once('connect', () => resolve());
        s4.once('connect_error', reject);
      }), 10_000, 'socket.io v4 connect over HTTPS');
      const entered = (await s4.timeout(10_000).emitWithAck('enter', { apikey, clientId: 'sio-v4' })) as { code: number };
      assert.equal(entered.code, 200);

      // socket.io-client 2 with Pomelo's sio framing (the seed's Android clients), long polling over HTTPS.
      const s2 = ioV2(`https://127.0.0.1:${t.server.sioPort}`, { ca: certs.rootPem, transports: ['polling'], forceNew: true, reconnection: false, timeout: 10_000 });
      closers.push(async () => {
        s2.close();
      });
      const v2Answers: Record<string, unknown>[] = [];
      s2.on('message', (raw: unknown) => {
        const m = JSON.parse(String(raw)) as Record<string, unknown>;
        if (m['route'] === 'onMsg') record('sio-v2', (m['body'] as { msg: unknown }).msg);
        else v2Answers.push(m);
      });
      await withTimeout(new Promise<void>((resolve, reject) => {
        s2.on('connect', () => resolve());
        s2.on('connect_error', (err: unknown) => reject(err instanceof Error ? err : new Error(String(err))));
      }), 10_000, 'socket.io v2 connect over HTTPS');
      s2.emit('message', pomeloSioFrame(1, 'sio-connector.entryHandler.enter', { apikey, clientId: 'sio-v2', role: 'client' }));
      await waitFor(() => v2Answers.some((m) => m['id'] === 1), { timeoutMs: 10_000, message: 'sio v2 enter answer' });
      assert.deepEqual(v2Answers.find((m) => m['id'] === 1)?.['body'], { code: 200, msg: 'add ok' });

      // MQTT over TLS: the mqtt npm client (mqtts://) and mosquitto_sub --cafile.
      const m = await mqtt.connectAsync(`mqtts://127.0.0.1:${t.server.mqttPort ?? 0}`, {
        ca: certs.rootPem,
        username: apikey,
        clientId: 'mqtt-js',
        protocolVersion: 5,
        reconnectPeriod: 0,
      });
      closers.push(() => m.endAsync(true));
      m.on('message', (_topic: string, payload: Buffer) => record('mqtt-js', (JSON.parse(payload.toString()) as { data: unknown }).data));
      await m.subscribeAsync(`apps/${apikey}/all`, { qos: 1 });
      const sub = startChild('mosquitto_sub', [
        '-h', '127.0.0.1',
        '-p', String(t.server.mqttPort ?? 0),
        '--cafile', certs.rootFile,
        '-u', apikey,
        '-i', 'mosquitto',
        '-V', 'mqttv311',
        '-t', `apps/${apikey}/all`,
        '-q', '1',
        '-C', '1',
        '-W', '30',
      ]);
      closers.push(() => stopChild(sub));
      await waitFor(() => isOnline(t, 'mosquitto', 'mqtt') || sub.child.exitCode !== null, { timeoutMs: 10_000, message: 'mosquitto_sub to connect' });
      assert.equal(sub.child.exitCode, null, `mosquitto_sub exited: ${sub.stderr}`);

      // Plain WebSocket at wss://…/ws on the HTTPS port.
      const ws = new WebSocket(`wss://127.0.0.1:${t.server.httpPort}/ws`, { ca: certs.rootPem });
      closers.push(async () => {
        ws.close();
      });
      let wsEntered = false;
      ws.on('message', (raw: Buffer) => {
        const f = JSON.parse(raw.toString()) as Record<string, unknown>;
        if (f['type'] === 'entered') wsEntered = true;
        if (f['type'] === 'message') record('ws', f['data']);
      });
      await withTimeout(new Promise<void>((resolve, reject) => {
        ws.once('open', () => resolve());
        ws.once('error', reject);
      }), 10_000, 'wss /ws open');
      ws.send(JSON.stringify({ type: 'enter', apikey, clientId: 'ws' }));
      await waitFor(() => wsEntered, { timeoutMs: 10_000, message: 'wss /ws enter' });

      // Server-Sent Events over HTTPS with curl.
      const sse = startChild('curl', ['-sSN', '--cacert', certs.rootFile, `${t.httpUrl}/api/v1/apps/${apikey}/clients/sse/events`]);
      closers.push(() => stopChild(sse));
      await waitFor(() => isOnline(t, 'sse', 'sse') || sse.child.exitCode !== null, { timeoutMs: 10_000, message: 'curl SSE to enter' });
      assert.equal(sse.child.exitCode, null, `curl exited: ${sse.stderr}`);

      const who = ['hybrid-tcp', 'hybrid-ws', 'sdk-tls', 'sdk-wss', 'sio-v4', 'sio-v2', 'mqtt-js', 'mosquitto', 'ws', 'sse'];
      const pushed = await curlPush(t, certs, { text: 'over TLS', n: 1 });
      assert.equal(pushed.targeted, who.length);

      const expected = { text: 'over TLS', n: 1 };
      await waitFor(() => who.filter((w) => !['mosquitto', 'sse'].includes(w)).every((w) => (got.get(w)?.length ?? 0) > 0), {
        timeoutMs: 10_000,
        message: `the push at every client (got: ${[...got.keys()].join(', ')})`,
      });
      for (const w of who.filter((x) => !['mosquitto', 'sse'].includes(x))) assert.deepEqual(got.get(w), [expected], w);

      assert.equal(await withTimeout(sub.exit, 10_000, 'mosquitto_sub to print the push and exit'), 0, sub.stderr);
      assert.deepEqual((JSON.parse(sub.stdout) as { data: unknown }).data, expected);

      await waitFor(() => sse.stdout.includes('\n\n') && sse.stdout.includes('"over TLS"'), { timeoutMs: 10_000, message: 'the SSE event' });
      const data = /^data: (.*)$/m.exec(sse.stdout)?.[1];
      assert.deepEqual(JSON.parse(data ?? 'null'), expected);
      assert.match(sse.stdout, new RegExp(`^id: ${pushed.id}$`, 'm'));
    } finally {
      for (const close of closers.reverse()) await close().catch(() => undefined);
    }
  });

  it('plain TCP, plain HTTP and clients that do not trust the certificate are refused; TLS clients keep receiving', async () => {
    const apikey = t.app.apikey;
    const c = await PomeloClient.connect({ host: '127.0.0.1', port: t.server.hybridPort, transport: 'tcp', tls: { ca: certs.rootPem }, requestTimeoutMs: 10_000 });
    const received: unknown[] = [];
    c.on('onMsg', (body: unknown) => received.push((body as { msg: unknown }).msg));
    try {
      await c.request('connector.entryHandler.enter', { apikey, clientId: 'survivor', role: 'client' });
      const counts = (): number[] => [t.server.hub.connectionCount, t.server.hybrid.connectionCount, t.server.mqtt?.connectionCount ?? -1, t.server.sio.connectionCount];
      const before = counts();

      // What a client that forgot TLS sends first on each port.
      const hello = reference.protocol.Package.encode(
        reference.protocol.Package.TYPE_HANDSHAKE,
        reference.protocol.strencode(JSON.stringify({ sys: { type: 'js-websocket', version: '0.0.1' } })),
      );
      const connect = generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: 'plain', keepalive: 30, username: apikey });
      const get = Buffer.from('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
      const plain = [
        plainTcp(t.server.hybridPort, hello),
        plainTcp(t.server.hybridPort, get),
        plainTcp(t.server.mqttPort ?? 0, connect),
        plainTcp(t.server.sioPort, get),
        plainTcp(t.server.httpPort, get),
      ];
      for (const [i, p] of plain.entries()) {
        const back = await withTimeout(p.closed, 10_000, `plain client ${i} to be closed`);
        // Nothing of our protocols in the clear: at most a TLS alert record (type 21).
        assert.ok(back.length === 0 || back[0] === 0x15, `plain client ${i} got ${back.subarray(0, 16).toString('hex')}`);
      }

      // TLS clients that do not trust our CA: their handshake fails on their side.
      for (const port of [t.server.hybridPort, t.server.mqttPort ?? 0, t.server.sioPort, t.server.httpPort]) {
        const socket = tls.connect({ host: '127.0.0.1', port });
        const err = await withTimeout(new Promise<NodeJS.ErrnoException>((resolve) => socket.once('error', resolve)), 10_000, 'untrusting client error');
        assert.match(err.code ?? '', /UNABLE_TO_GET_ISSUER_CERT|SELF_SIGNED|UNABLE_TO_VERIFY/);
        socket.destroy();
      }
      // curl without the CA refuses too, and says why.
      await assert.rejects(run('curl', ['-sS', `${t.httpUrl}/healthz`]), /certificate/i);

      // None of them became a connection, and everyone else is unharmed.
      assert.deepEqual(counts(), before);
      const pushed = await curlPush(t, certs, { after: 'refusals' });
      assert.ok(pushed.targeted >= 1);
      await waitFor(() => received.length > 0, { timeoutMs: 10_000, message: 'the push after the refusals' });
      assert.deepEqual(received, [{ after: 'refusals' }]);
    } finally {
      await c.close();
    }
  });
});

describe('TLS handshake deadline', () => {
  let certs: Certificates;
  let t: TestServer;
  before(async () => {
    certs = makeCertificates();
    t = await startTestServer({ tlsCertFile: certs.leafFile, tlsKeyFile: certs.leafKeyFile, tlsCaFile: certs.intermediateFile, handshakeTimeoutSeconds: 1 });
  });
  after(async () => {
    await t?.close();
    if (certs) rmSync(certs.dir, { recursive: true, force: true });
  });

  it('a socket that opens TCP and never finishes TLS is closed at the deadline, and never counts as a connection', async () => {
    const ports = [t.server.hybridPort, t.server.mqttPort ?? 0, t.server.sioPort, t.server.httpPort];
    // Silent sockets, and sockets that trickle a ClientHello a byte at a time: the
    // deadline runs from the accept, so bytes that keep coming do not extend it.
    const silent = ports.map((port) => plainTcp(port, Buffer.alloc(0)));
    const header = Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03]); // record: handshake, 512 B; ClientHello, 508 B; TLS 1.2
    const trickling = ports.map((port) => {
      const p = plainTcp(port, Buffer.alloc(0));
      let sent = 0;
      const timer = setInterval(() => {
        if (!p.socket.destroyed && p.socket.writable) p.socket.write(sent < header.length ? header.subarray(sent, sent + 1) : Buffer.from([sent & 0xff]));
        sent += 1;
      }, 50);
      void p.closed.then(() => clearInterval(timer));
      return { ...p, timer };
    });
    try {
      await waitFor(() => [...silent, ...trickling].every((p) => !p.socket.connecting), { timeoutMs: 5000, message: 'the sockets to connect' });
      // Accepted by the kernel and the TLS layer, but no connector has seen them.
      assert.equal(t.server.hub.connectionCount, 0);
      assert.equal(t.server.hybrid.connectionCount, 0);
      assert.equal(t.server.mqtt?.connectionCount, 0);
      assert.equal(t.server.sio.connectionCount, 0);
      for (const [i, p] of [...silent, ...trickling].entries()) {
        await withTimeout(p.closed, 15_000, `socket ${i} to be closed by the TLS handshake deadline`);
      }
      assert.equal(t.server.hub.connectionCount, 0);

      // The server still takes TLS clients.
      const c = await PomeloClient.connect({ host: '127.0.0.1', port: t.server.hybridPort, transport: 'ws', tls: { ca: certs.rootPem } });
      try {
        assert.deepEqual(await c.request('connector.entryHandler.enter', { apikey: t.app.apikey, clientId: 'after', role: 'client' }), { code: 200, msg: 'add ok' });
      } finally {
        await c.close();
      }
    } finally {
      for (const p of [...silent, ...trickling]) p.socket.destroy();
      for (const p of trickling) clearInterval(p.timer);
    }
  });
});

describe('TLS configuration errors', () => {
  let certs: Certificates;
  let dataDir: string;
  before(() => {
    certs = makeCertificates();
    dataDir = mkdtempSync(join(tmpdir(), 'shaddock-tls-data-'));
  });
  after(() => {
    if (certs) rmSync(certs.dir, { recursive: true, force: true });
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  const config = (tlsFiles: Record<string, string>): ReturnType<typeof loadConfig> =>
    loadConfig({ env: {}, flags: { dataDir, host: '127.0.0.1', httpPort: 0, hybridPort: 0, sioPort: 0, mqttPort: 0, ntfyPort: 0, logLevel: 'silent', ...tlsFiles } });

  it('a certificate without a key (or a CA file alone) is a ConfigError', () => {
    assert.throws(() => config({ tlsCertFile: certs.leafFile }), (err: unknown) => err instanceof ConfigError && /tlsCertFile and tlsKeyFile/.test(err.message));
    assert.throws(() => config({ tlsCaFile: certs.intermediateFile }), ConfigError);
    const fromEnv = loadConfig({ env: { SHADDOCK_TLS_CERT: certs.leafFile, SHADDOCK_TLS_KEY: certs.leafKeyFile, SHADDOCK_TLS_CA: certs.intermediateFile } });
    assert.equal(fromEnv.tlsCertFile, certs.leafFile);
    assert.equal(fromEnv.tlsKeyFile, certs.leafKeyFile);
    assert.equal(fromEnv.tlsCaFile, certs.intermediateFile);
  });

  it('a missing file, a file that is not a certificate, or a key that does not match stops the start with a clear ConfigError', async () => {
    const cases: [Record<string, string>, RegExp][] = [
      [{ tlsCertFile: join(certs.dir, 'nope.pem'), tlsKeyFile: certs.leafKeyFile }, /cannot read tlsCertFile .*nope\.pem: no such file/],
      [{ tlsCertFile: certs.leafFile, tlsKeyFile: join(certs.dir, 'nope.key') }, /cannot read tlsKeyFile .*nope\.key: no such file/],
      [{ tlsCertFile: certs.leafFile, tlsKeyFile: certs.leafKeyFile, tlsCaFile: join(certs.dir, 'leaf.ext') }, /tlsCaFile .*leaf\.ext does not hold a PEM certificate/],
      [{ tlsCertFile: certs.leafKeyFile, tlsKeyFile: certs.leafKeyFile }, /tlsCertFile .*leaf\.key does not hold a PEM certificate/],
      [{ tlsCertFile: certs.leafFile, tlsKeyFile: certs.otherKeyFile }, /tlsKeyFile .*int\.key is not the key of the certificate in .*leaf\.pem/],
      [{ tlsCertFile: certs.leafFile, tlsKeyFile: certs.leafFile }, /cannot use tlsCertFile .*leaf\.pem with tlsKeyFile .*leaf\.pem/],
    ];
    for (const [files, message] of cases) {
      await assert.rejects(startServer(config(files)), (err: unknown) => {
        assert.ok(err instanceof ConfigError, `${JSON.stringify(files)}: ${String(err)}`);
        assert.match(err.message, message);
        return true;
      });
    }
  });

  it('shaddock start prints one line, no stack trace, and exits 1', async () => {
    const result = await run(process.execPath, ['--import', 'tsx', join(ROOT, 'src/cli/index.ts'), 'start', '--data', dataDir, '--http-port', '0', '--hybrid-port', '0', '--sio-port', '0', '--mqtt-port', '0', '--ntfy-port', '0'], {
      cwd: ROOT,
      env: { ...process.env, SHADDOCK_CONFIG: '', SHADDOCK_TLS_CERT: join(certs.dir, 'missing.pem'), SHADDOCK_TLS_KEY: certs.leafKeyFile },
    }).then(
      () => ({ code: 0, stderr: '' }),
      (err: { code?: number; stderr?: string }) => ({ code: err.code, stderr: err.stderr ?? '' }),
    );
    assert.equal(result.code, 1);
    assert.match(result.stderr, /^shaddock: cannot read tlsCertFile .*missing\.pem: no such file\n$/);
  });
});
