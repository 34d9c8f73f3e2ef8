/**
 * Live-server fuzz (issue #8 item 8): malformed connections hammer every port of a real
 * node — garbage, truncated, oversized and mutated-valid frames on hybrid TCP, hybrid
 * WebSocket, socket.io (websocket and polling), MQTT, the plain WebSocket, HTTP and SSE —
 * while good clients spread over every connector keep receiving every pushed message.
 *
 *   npm run fuzz:live -- [--good 1000] [--bad 1000] [--pushes 200] [--concurrency 100] [--seed S]
 *
 * Passes when no good client lost or missed a message, none was kicked, the server still
 * answers /healthz, every bad connection is gone again (connection counts back to the
 * good clients) and the heap after the run is within a bound of the heap before it.
 * Connections come from 127.0.0.2 and up (`localAddress`), a few per address, so the
 * per-address limits see what they would see from many hosts.
 *
 * test/e2e/live-fuzz.test.ts runs a short version in `npm test`.
 */
import { connect as netConnect, type Socket } from 'node:net';
import { get as httpGet, request as httpRequest } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { setTimeout as delay } from 'node:timers/promises';
import { WebSocket } from 'ws';
import { io as ioV4, type Socket as SocketV4 } from 'socket.io-client';
import { MqttClient } from 'mqtt';
import { loadConfig, type ConfigInput } from '../../src/config.js';
import { startServer, type ShaddockServer } from '../../src/server.js';
import { HANDSHAKE_ACK_PACKAGE, HEARTBEAT_PACKAGE, PackageReader, PackageType, encodePackage } from '../../src/protocol/pomelo/package.js';
import { MessageType, decodeMessage, encodeNotify, encodeRequest } from '../../src/protocol/pomelo/message.js';
import { mutateBytes, randomBytes, rng, type Rng } from './fuzz-core.js';
import { decoderByName } from './decoders.js';

const GOOD_KINDS = ['hybrid-tcp', 'hybrid-ws', 'sio', 'mqtt', 'ws', 'sse'] as const;
type GoodKind = (typeof GOOD_KINDS)[number];
const BAD_TARGETS = ['hybrid-tcp', 'hybrid-ws', 'sio-ws', 'sio-polling', 'mqtt', 'ws', 'http', 'sse'] as const;
type BadTarget = (typeof BAD_TARGETS)[number];
const ATTACKS = ['garbage', 'mutated', 'truncated', 'oversized'] as const;
type Attack = (typeof ATTACKS)[number];

export interface LiveFuzzOptions {
  readonly good: number;
  readonly bad: number;
  readonly pushes: number;
  /** Bad connections open at once. */
  readonly concurrency: number;
  readonly seed: number;
  /** How long a bad connection is held before we drop it ourselves, ms. */
  readonly badHoldMs?: number;
  /** How long good clients may take to receive everything after the last push, ms. */
  readonly deliveryTimeoutMs?: number;
  readonly log?: (line: string) => void;
}

export interface LiveFuzzResult {
  readonly good: Readonly<Record<GoodKind, number>>;
  readonly bad: Readonly<Record<BadTarget, number>>;
  readonly badByAttack: Readonly<Record<Attack, number>>;
  /** Bad connections the server closed before we gave up on them. */
  readonly badClosedByServer: number;
  readonly pushes: number;
  /** Good clients that missed at least one message, and how many they missed. */
  readonly lost: readonly { readonly clientId: string; readonly kind: GoodKind; readonly missing: number }[];
  readonly kicked: readonly { readonly clientId: string; readonly reason: string }[];
  readonly healthz: number;
  readonly connectionsAfter: Readonly<Record<string, number>>;
  readonly heapBeforeMb: number;
  readonly heapPeakMb: number;
  readonly heapAfterMb: number;
  readonly rssPeakMb: number;
  readonly badPhaseMs: number;
  readonly deliveryMs: number;
}

interface Good {
  readonly kind: GoodKind;
  readonly clientId: string;
  readonly got: Set<number>;
  kicked: string | undefined;
  close(): void;
}

/** 127.0.0.2 … 127.0.0.251: loopback answers the whole 127/8 on Linux. */
function sourceAddress(i: number): string {
  return `127.0.0.${2 + (i % 250)}`;
}

function markOf(data: unknown): number | undefined {
  const n = typeof data === 'object' && data !== null ? (data as Record<string, unknown>)['n'] : undefined;
  return typeof n === 'number' ? n : undefined;
}

function withDeadline<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: no answer in ${ms} ms`)), ms);
    }),
  ]);
}

// ---------------------------------------------------------------- good clients

/** A Pomelo hybrid client on our own codec (TCP or WebSocket), from a chosen source address. */
function goodHybrid(server: ShaddockServer, apikey: string, clientId: string, kind: 'hybrid-tcp' | 'hybrid-ws', from: string): Promise<Good> {
  const got = new Set<number>();
  const reader = new PackageReader({ maxPackage: 1 << 24 });
  const handshake = encodePackage(PackageType.HANDSHAKE, Buffer.from(JSON.stringify({ sys: { type: 'js-socket', version: '0.0.1' }, user: {} })));
  let send: (b: Buffer) => void;
  let close: () => void;
  const good: Good = { kind, clientId, got, kicked: undefined, close: () => close() };
  return withDeadline(
    new Promise<Good>((resolveGood, reject) => {
      const onBytes = (chunk: Buffer): void => {
        for (const p of reader.push(chunk)) {
          switch (p.type) {
            case PackageType.HANDSHAKE:
              send(HANDSHAKE_ACK_PACKAGE);
              send(encodePackage(PackageType.DATA, encodeRequest(1, 'connector.entryHandler.enter', Buffer.from(JSON.stringify({ role: 'client', apikey, clientId })))));
              break;
            case PackageType.HEARTBEAT:
              send(HEARTBEAT_PACKAGE);
              break;
            case PackageType.KICK:
              good.kicked = p.body.toString();
              break;
            case PackageType.HANDSHAKE_ACK:
              break;
            case PackageType.DATA: {
              const m = decodeMessage(p.body);
              const body = JSON.parse(m.body.toString()) as Record<string, unknown>;
              if (m.type === MessageType.RESPONSE) {
                if (body['code'] === 200) resolveGood(good);
                else reject(new Error(`${kind} enter refused: ${JSON.stringify(body)}`));
              } else if (m.type === MessageType.PUSH) {
                const n = markOf(body['msg']);
                if (n !== undefined) got.add(n);
                if (typeof body['id'] === 'number') send(encodePackage(PackageType.DATA, encodeNotify('shaddock.client.ack', Buffer.from(JSON.stringify({ id: body['id'] })))));
              }
              break;
            }
            default:
              break;
          }
        }
      };
      if (kind === 'hybrid-tcp') {
        const s = netConnect({ host: '127.0.0.1', port: server.hybridPort, localAddress: from });
        send = (b) => s.write(b);
        close = () => s.destroy();
        s.on('connect', () => send(handshake));
        s.on('data', onBytes);
        s.on('error', reject);
        s.on('close', () => (good.kicked ??= 'closed'));
      } else {
        const ws = new WebSocket(`ws://127.0.0.1:${server.hybridPort}/`, { localAddress: from });
        send = (b) => ws.send(b);
        close = () => ws.terminate();
        ws.on('open', () => send(handshake));
        ws.on('message', (d: Buffer) => onBytes(d));
        ws.on('error', reject);
        ws.on('close', () => (good.kicked ??= 'closed'));
      }
    }),
    15_000,
    `${kind} ${clientId}`,
  );
}

async function goodClient(server: ShaddockServer, apikey: string, kind: GoodKind, clientId: string, from: string): Promise<Good> {
  switch (kind) {
    case 'hybrid-tcp':
    case 'hybrid-ws':
      return goodHybrid(server, apikey, clientId, kind, from);
    case 'sio': {
      const got = new Set<number>();
      // engine.io-client passes localAddress to ws (not in socket.io-client's option types).
      const opts = { transports: ['websocket'], reconnection: false, forceNew: true, localAddress: from } as Parameters<typeof ioV4>[1];
      const s: SocketV4 = ioV4(`http://127.0.0.1:${server.sioPort}`, opts);
      const good: Good = { kind, clientId, got, kicked: undefined, close: () => s.disconnect() };
      s.onAny((event: string, ...args: unknown[]) => {
        if (event === 'kick') good.kicked = JSON.stringify(args[0]);
        const p = args[0] as { data?: unknown } | undefined;
        const n = markOf(p?.data);
        if (n !== undefined) got.add(n);
        const cb = args[1];
        if (typeof cb === 'function') (cb as () => void)();
      });
      s.on('disconnect', (reason) => (good.kicked ??= `disconnect: ${reason}`));
      await withDeadline(new Promise<void>((r, j) => (s.once('connect', () => r()), s.once('connect_error', j))), 15_000, `sio ${clientId}`);
      const res = (await s.timeout(15_000).emitWithAck('enter', { apikey, clientId })) as { code: number };
      if (res.code !== 200) throw new Error(`sio enter refused: ${JSON.stringify(res)}`);
      return good;
    }
    case 'mqtt': {
      const got = new Set<number>();
      const c = new MqttClient(() => netConnect({ host: '127.0.0.1', port: server.mqttPort ?? 0, localAddress: from }), {
        username: apikey,
        clientId,
        clean: false,
        protocolVersion: 4,
        reconnectPeriod: 0,
        connectTimeout: 15_000,
      });
      const good: Good = { kind, clientId, got, kicked: undefined, close: () => void c.end(true) };
      c.on('message', (_topic: string, payload: Buffer) => {
        const n = markOf((JSON.parse(payload.toString()) as { data?: unknown }).data);
        if (n !== undefined) got.add(n);
      });
      await withDeadline(new Promise<void>((r, j) => (c.once('connect', () => r()), c.once('error', j))), 15_000, `mqtt ${clientId}`);
      c.on('close', () => (good.kicked ??= 'closed'));
      await c.subscribeAsync([`apps/${apikey}/all`, `apps/${apikey}/clients/${clientId}`], { qos: 1 });
      return good;
    }
    case 'ws': {
      const got = new Set<number>();
      const ws = new WebSocket(`ws://127.0.0.1:${server.httpPort}/ws`, { localAddress: from });
      const good: Good = { kind, clientId, got, kicked: undefined, close: () => ws.terminate() };
      const entered = new Promise<void>((r, j) => {
        ws.on('message', (raw: Buffer) => {
          const f = JSON.parse(raw.toString()) as Record<string, unknown>;
          if (f['type'] === 'entered') r();
          else if (f['type'] === 'error') j(new Error(`ws enter refused: ${raw.toString()}`));
          else if (f['type'] === 'kick') good.kicked = String(f['reason']);
          else if (f['type'] === 'message') {
            const n = markOf(f['data']);
            if (n !== undefined) got.add(n);
            ws.send(JSON.stringify({ type: 'ack', id: f['id'] }));
          }
        });
        ws.on('error', j);
      });
      ws.on('open', () => ws.send(JSON.stringify({ type: 'enter', apikey, clientId })));
      ws.on('close', () => (good.kicked ??= 'closed'));
      await withDeadline(entered, 15_000, `ws ${clientId}`);
      return good;
    }
    case 'sse': {
      const got = new Set<number>();
      let close = (): void => undefined;
      const good: Good = { kind, clientId, got, kicked: undefined, close: () => close() };
      await withDeadline(
        new Promise<void>((r, j) => {
          const req = httpGet({ host: '127.0.0.1', port: server.httpPort, localAddress: from, path: `/api/v1/apps/${apikey}/clients/${clientId}/events` }, (res) => {
            if (res.statusCode !== 200) {
              j(new Error(`sse refused: ${res.statusCode}`));
              res.resume();
              return;
            }
            let buffer = '';
            res.setEncoding('utf8');
            res.on('data', (s: string) => {
              buffer += s;
              let end: number;
              while ((end = buffer.indexOf('\n\n')) >= 0) {
                const block = buffer.slice(0, end);
                buffer = buffer.slice(end + 2);
                const data = /^data: (.*)$/m.exec(block)?.[1];
                const event = /^event: (.*)$/m.exec(block)?.[1];
                if (event === 'kick') good.kicked = data ?? 'kick';
                else if (data !== undefined) {
                  const n = markOf(JSON.parse(data));
                  if (n !== undefined) got.add(n);
                }
              }
            });
            res.on('close', () => (good.kicked ??= 'closed'));
            r();
          });
          close = () => req.destroy();
          req.on('error', j);
        }),
        15_000,
        `sse ${clientId}`,
      );
      return good;
    }
  }
}

// ---------------------------------------------------------------- bad connections

interface Corpus {
  readonly pomelo: readonly Buffer[];
  readonly sio: readonly Buffer[];
  readonly mqtt: readonly Buffer[];
  readonly json: readonly Buffer[];
  readonly http: readonly Buffer[];
}

async function loadCorpus(): Promise<Corpus> {
  const seeds = async (name: string): Promise<readonly Buffer[]> => {
    const d = await decoderByName(name)!.open();
    const s = d.seeds;
    await d.close?.();
    return s;
  };
  return { pomelo: await seeds('pomelo'), sio: await seeds('sio-packet'), mqtt: await seeds('mqtt'), json: await seeds('ws-json'), http: await seeds('http') };
}

/** What one bad connection sends, as a list of writes. */
function badPayload(target: BadTarget, attack: Attack, corpus: Corpus, r: Rng, apikey: string): Buffer[] {
  const pick = (list: readonly Buffer[]): Buffer => list[r() % list.length] ?? Buffer.alloc(0);
  const mutate = (b: Buffer): Buffer => mutateBytes(b, [], r);
  const pomeloHandshake = encodePackage(PackageType.HANDSHAKE, Buffer.from('{"sys":{"type":"fuzz","version":"0.0.1"},"user":{}}'));
  switch (attack) {
    case 'garbage':
      return Array.from({ length: 1 + (r() % 4) }, () => randomBytes(r));
    case 'oversized': {
      const big = Buffer.alloc(1 + (r() % 4) * 1024 * 1024, 0x61);
      // Pomelo: a header declaring 16 MiB; MQTT: a PUBLISH declaring 256 MiB - 1; then part of it.
      if (target === 'hybrid-tcp' || target === 'hybrid-ws') return [Buffer.concat([Buffer.from([4, 0xff, 0xff, 0xff]), big.subarray(0, 64 * 1024)])];
      if (target === 'mqtt') return [Buffer.concat([Buffer.from([0x30, 0xff, 0xff, 0xff, 0x7f]), big.subarray(0, 64 * 1024)])];
      return [big];
    }
    case 'truncated': {
      const src = target === 'mqtt' ? pick(corpus.mqtt) : target.startsWith('hybrid') ? Buffer.concat([pomeloHandshake, pick(corpus.pomelo)]) : target.startsWith('sio') ? pick(corpus.sio) : pick(corpus.json);
      return [src.subarray(0, Math.max(1, r() % Math.max(1, src.length)))];
    }
    case 'mutated': {
      switch (target) {
        case 'hybrid-tcp':
        case 'hybrid-ws':
          return [r() % 2 === 0 ? pomeloHandshake : mutate(pomeloHandshake), HANDSHAKE_ACK_PACKAGE, ...Array.from({ length: 1 + (r() % 6) }, () => mutate(pick(corpus.pomelo)))];
        case 'mqtt':
          return Array.from({ length: 1 + (r() % 4) }, () => mutate(pick(corpus.mqtt)));
        case 'sio-ws':
        case 'sio-polling':
          return Array.from({ length: 1 + (r() % 6) }, () => mutate(pick(corpus.sio)));
        case 'ws':
        case 'sse':
          return Array.from({ length: 1 + (r() % 6) }, () => mutate(pick(corpus.json)));
        case 'http': {
          const body = mutate(pick(corpus.http));
          const head = `POST /api/v1/apps/${apikey}/messages HTTP/1.1\r\nhost: x\r\nauthorization: Bearer nope\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\n\r\n`;
          return [mutate(Buffer.from(head)), body];
        }
      }
    }
  }
}

/** Opens one bad connection, writes its payload, holds it until the server closes it or `holdMs`. Resolves true when the server closed it. */
function badConnection(server: ShaddockServer, target: BadTarget, writes: Buffer[], from: string, holdMs: number, apikey: string): Promise<boolean> {
  return new Promise<boolean>((done) => {
    let finished = false;
    let drop = (): void => undefined;
    const finish = (byServer: boolean): void => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      drop();
      done(byServer);
    };
    const timer = setTimeout(() => finish(false), holdMs);
    const raw = (port: number): void => {
      const s: Socket = netConnect({ host: '127.0.0.1', port, localAddress: from });
      drop = () => s.destroy();
      s.on('connect', () => {
        for (const w of writes) if (!s.destroyed) s.write(w);
      });
      s.on('data', () => undefined);
      s.on('error', () => finish(true));
      s.on('close', () => finish(true));
    };
    const ws = (url: string, text: boolean): void => {
      const c = new WebSocket(url, { localAddress: from, maxPayload: 1 << 20 });
      drop = () => c.terminate();
      c.on('open', () => {
        for (const w of writes) if (c.readyState === c.OPEN) c.send(text ? w.toString('utf8') : w);
      });
      c.on('message', () => undefined);
      c.on('error', () => finish(true));
      c.on('close', () => finish(true));
    };
    switch (target) {
      case 'hybrid-tcp':
        raw(server.hybridPort);
        return;
      case 'hybrid-ws':
        ws(`ws://127.0.0.1:${server.hybridPort}/`, false);
        return;
      case 'sio-ws':
        ws(`ws://127.0.0.1:${server.sioPort}/socket.io/?EIO=${writes.length % 2 === 0 ? 4 : 3}&transport=websocket`, true);
        return;
      case 'sio-polling': {
        // A polling handshake, then the bytes as a POST for that session.
        const post = (sid: string): void => {
          const body = Buffer.concat(writes);
          const req = httpRequest(
            { host: '127.0.0.1', port: server.sioPort, localAddress: from, method: 'POST', path: `/socket.io/?EIO=4&transport=polling&sid=${encodeURIComponent(sid)}`, headers: { 'content-type': 'text/plain' } },
            (res) => {
              res.resume();
              res.on('end', () => finish(true));
            },
          );
          drop = () => req.destroy();
          req.on('error', () => finish(true));
          req.end(body);
        };
        const hs = httpGet({ host: '127.0.0.1', port: server.sioPort, localAddress: from, path: '/socket.io/?EIO=4&transport=polling' }, (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (s: string) => (text += s));
          res.on('end', () => post(/"sid":"([^"]+)"/.exec(text)?.[1] ?? 'nope'));
        });
        drop = () => hs.destroy();
        hs.on('error', () => finish(true));
        return;
      }
      case 'mqtt':
        raw(server.mqttPort ?? 0);
        return;
      case 'ws':
        ws(`ws://127.0.0.1:${server.httpPort}/ws`, writes.length % 3 !== 0);
        return;
      case 'http':
        raw(server.httpPort);
        return;
      case 'sse': {
        const lastId = (writes[0] ?? Buffer.alloc(0)).toString('latin1').replace(/[^\x20-\x7e]/g, '').slice(0, 200);
        const req = httpGet(
          { host: '127.0.0.1', port: server.httpPort, localAddress: from, path: `/api/v1/apps/${apikey}/clients/bad-${lastId.length}/events?tags=${encodeURIComponent(lastId)}`, headers: { 'last-event-id': lastId } },
          (res) => {
            res.resume();
            res.on('close', () => finish(true));
          },
        );
        drop = () => req.destroy();
        req.on('error', () => finish(true));
        return;
      }
    }
  });
}

// ---------------------------------------------------------------- the run

function heapMb(): number {
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
  return process.memoryUsage().heapUsed / 2 ** 20;
}

/** Runs the live fuzz against a node it starts (and stops) itself. */
export async function runLiveFuzz(opts: LiveFuzzOptions, config: Partial<ConfigInput> = {}): Promise<LiveFuzzResult> {
  const log = opts.log ?? (() => undefined);
  const dataDir = mkdtempSync(join(tmpdir(), 'shaddock-live-fuzz-'));
  const server = await startServer(
    loadConfig({ env: {}, flags: { host: '127.0.0.1', httpPort: 0, hybridPort: 0, sioPort: 0, mqttPort: 0, ntfyPort: 0, logLevel: 'silent', adminPassword: 'live-fuzz-admin', ...config, dataDir } }),
  );
  const goods: Good[] = [];
  try {
    const app = (await server.storage.apps.listApps())[0];
    if (!app) throw new Error('no demo app');
    const apikey = app.apikey;
    const corpus = await loadCorpus();
    const r = rng(opts.seed);

    // Good clients, a few at a time (the per-address connect rate is a limit under test too).
    const goodCounts = Object.fromEntries(GOOD_KINDS.map((k) => [k, 0])) as Record<GoodKind, number>;
    for (let i = 0; i < opts.good; i += 25) {
      const batch = [];
      for (let j = i; j < Math.min(opts.good, i + 25); j++) {
        const kind = GOOD_KINDS[j % GOOD_KINDS.length]!;
        goodCounts[kind]++;
        batch.push(goodClient(server, apikey, kind, `good-${j}`, sourceAddress(j)));
      }
      goods.push(...(await Promise.all(batch)));
    }
    log(`good clients: ${opts.good} (${GOOD_KINDS.map((k) => `${k} ${goodCounts[k]}`).join(', ')})`);
    const heapBeforeMb = heapMb();
    let heapPeakMb = heapBeforeMb;
    let rssPeakMb = process.memoryUsage().rss / 2 ** 20;
    const sampler = setInterval(() => {
      const m = process.memoryUsage();
      heapPeakMb = Math.max(heapPeakMb, m.heapUsed / 2 ** 20);
      rssPeakMb = Math.max(rssPeakMb, m.rss / 2 ** 20);
    }, 200);

    // Bad connections, `concurrency` at a time, while a publisher pushes.
    const badCounts = Object.fromEntries(BAD_TARGETS.map((k) => [k, 0])) as Record<BadTarget, number>;
    const attackCounts = Object.fromEntries(ATTACKS.map((k) => [k, 0])) as Record<Attack, number>;
    let closedByServer = 0;
    let next = 0;
    const started = Date.now();
    const worker = async (): Promise<void> => {
      while (next < opts.bad) {
        const i = next++;
        const target = BAD_TARGETS[r() % BAD_TARGETS.length]!;
        const attack = ATTACKS[r() % ATTACKS.length]!;
        badCounts[target]++;
        attackCounts[attack]++;
        const writes = badPayload(target, attack, corpus, r, apikey);
        if (await badConnection(server, target, writes, sourceAddress(opts.good + i), opts.badHoldMs ?? 2000, apikey)) closedByServer++;
      }
    };
    const pushAt = `http://127.0.0.1:${server.httpPort}/api/v1/apps/${apikey}/messages`;
    const publisher = async (): Promise<void> => {
      for (let n = 0; n < opts.pushes; n++) {
        // Every other message is for one good client by id (resume and private paths too).
        const to = n % 2 === 0 ? {} : { to: { clientIds: goods.map((g) => g.clientId) } };
        const res = await fetch(pushAt, {
          method: 'POST',
          headers: { authorization: `Bearer ${app.secret}`, 'content-type': 'application/json' },
          body: JSON.stringify({ data: { n }, ...to }),
        });
        if (res.status !== 202) throw new Error(`push ${n} answered ${res.status}: ${await res.text()}`);
        await delay(5);
      }
    };
    await Promise.all([...Array.from({ length: opts.concurrency }, worker), publisher()]);
    const badPhaseMs = Date.now() - started;
    log(`bad connections: ${opts.bad} in ${badPhaseMs} ms; closed by the server ${closedByServer}`);

    // Everything pushed reaches every good client.
    const deliveryStarted = Date.now();
    const deadline = Date.now() + (opts.deliveryTimeoutMs ?? 60_000);
    while (Date.now() < deadline && goods.some((g) => g.got.size < opts.pushes && g.kicked === undefined)) await delay(50);
    const deliveryMs = Date.now() - deliveryStarted;
    const lost = goods.filter((g) => g.got.size < opts.pushes).map((g) => ({ clientId: g.clientId, kind: g.kind, missing: opts.pushes - g.got.size }));
    const kicked = goods.filter((g) => g.kicked !== undefined).map((g) => ({ clientId: g.clientId, reason: g.kicked ?? '' }));

    // Every bad connection is gone again: connector counts come back to the good clients.
    const counts = (): Record<string, number> => ({
      hybrid: server.hybrid.connectionCount,
      sio: server.sio.connectionCount,
      mqtt: server.mqtt?.connectionCount ?? 0,
      ws: server.ws.connectionCount,
      sse: server.sse.connectionCount,
      hub: server.hub.connectionCount,
    });
    const expected = { hybrid: goodCounts['hybrid-tcp'] + goodCounts['hybrid-ws'], sio: goodCounts.sio, mqtt: goodCounts.mqtt, ws: goodCounts.ws, sse: goodCounts.sse };
    const settle = Date.now() + 30_000;
    while (Date.now() < settle && Object.entries(expected).some(([k, v]) => counts()[k] !== v)) await delay(100);
    const healthz = (await fetch(`http://127.0.0.1:${server.httpPort}/healthz`)).status;
    clearInterval(sampler);
    const heapAfterMb = heapMb();
    return {
      good: goodCounts,
      bad: badCounts,
      badByAttack: attackCounts,
      badClosedByServer: closedByServer,
      pushes: opts.pushes,
      lost,
      kicked,
      healthz,
      connectionsAfter: counts(),
      heapBeforeMb,
      heapPeakMb,
      heapAfterMb,
      rssPeakMb,
      badPhaseMs,
      deliveryMs,
    };
  } finally {
    for (const g of goods) g.close();
    await server.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      good: { type: 'string', default: '1000' },
      bad: { type: 'string', default: '1000' },
      pushes: { type: 'string', default: '200' },
      concurrency: { type: 'string', default: '100' },
      seed: { type: 'string' },
    },
  });
  const seed = Number(values.seed ?? (Date.now() & 0x7fffffff));
  const opts: LiveFuzzOptions = {
    good: Number(values.good),
    bad: Number(values.bad),
    pushes: Number(values.pushes),
    concurrency: Number(values.concurrency),
    seed,
    deliveryTimeoutMs: 120_000,
    log: (l) => console.log(l),
  };
  console.log(`live fuzz: ${opts.good} good clients, ${opts.bad} bad connections (${opts.concurrency} at once), ${opts.pushes} pushes, seed ${seed}, node ${process.version}`);
  const result = await runLiveFuzz(opts);
  console.log(JSON.stringify(result, null, 2));
  const ok = result.lost.length === 0 && result.kicked.length === 0 && result.healthz === 200 && result.heapAfterMb - result.heapBeforeMb < 128;
  console.log(ok ? 'PASS' : 'FAIL');
  process.exit(ok ? 0 : 1);
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) await main();
