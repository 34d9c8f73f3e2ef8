// Counts the Redis commands (MONITOR, including those run inside our Lua scripts) that
// one node issues per client enter, per leave, per broadcast and per presence beat,
// and measures accepted pushes per second through Redis storage — the figures behind
// the capacity model in docs/cluster.md. `node --import tsx bench/cluster-ops.ts`
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { startTestServer } from '../test/fixtures/test-server.js';
import { PomeloClient } from '../test/fixtures/pomelo-client.js';
import { unlinkByPrefix } from '../src/redis/client.js';

const REDIS = process.env['SHADDOCK_TEST_REDIS'] ?? 'redis://127.0.0.1:6379';
const prefix = `shaddock-bench:${randomUUID()}:`;
const t = await startTestServer({ redisUrl: REDIS, redisPrefix: prefix, nodeId: 'bench', logLevel: 'silent' });
const monitorClient = new Redis(REDIS);
const monitor = await monitorClient.monitor();
let log: string[][] = [];
monitor.on('monitor', (_time: string, args: string[]) => {
  if (args.some((a) => a.startsWith(prefix))) log.push(args);
});
const settle = (ms = 400): Promise<void> => new Promise((r) => setTimeout(r, ms));
function take(what: string, per = 1): void {
  const by = new Map<string, number>();
  for (const a of log) by.set(a[0]!.toLowerCase(), (by.get(a[0]!.toLowerCase()) ?? 0) + 1);
  const scripts = by.get('evalsha') ?? 0;
  const total = log.length;
  console.log(`${what}: ${(total / per).toFixed(1)} commands (${(scripts / per).toFixed(1)} script calls) per unit — ${JSON.stringify(Object.fromEntries(by))}`);
  log = [];
}
await settle();
log = [];
const apikey = t.app.apikey;
const clients: PomeloClient[] = [];
const N = 100;
for (let i = 0; i < N; i++) {
  const c = await PomeloClient.connect({ host: '127.0.0.1', port: t.server.hybridPort, transport: 'tcp' });
  await c.request('connector.entryHandler.enter', { apikey, clientId: `c${i}`, role: 'client' });
  clients.push(c);
}
await settle();
take(`enter (${N} clients)`, N);
const target = { all: true, clientIds: [], tags: [] };
for (let i = 0; i < 10; i++) await t.server.hub.publish({ apikey, target, event: 'onMsg', data: { i } });
await settle();
take(`broadcast to ${N} clients, incl. the position flush (10 messages)`, 10);
for (const c of clients) c.notify('shaddock.client.ack', { id: 1e9 });
await settle();
take(`ack (${N} clients)`, N);
await settle(2100);
take('2.1 s idle: presence heartbeats', 1);
await Promise.all(clients.map((c) => c.close()));
await settle();
take(`leave (${N} clients)`, N);
monitor.disconnect();
monitorClient.disconnect();

// Throughput of accepted pushes through Redis storage on one node (no clients).
const M = 5000;
let started = Date.now();
for (let i = 0; i < M; i++) await t.server.hub.publish({ apikey, target, event: 'onMsg', data: { i } });
let ms = Date.now() - started;
console.log(`sequential publish: ${Math.round((M / ms) * 1000)} msg/s (${((ms * 1000) / M).toFixed(0)} µs each)`);
started = Date.now();
const inflight: Promise<unknown>[] = [];
for (let i = 0; i < M; i++) inflight.push(t.server.hub.publish({ apikey, target, event: 'onMsg', data: { i } }));
await Promise.all(inflight);
ms = Date.now() - started;
console.log(`concurrent publish: ${Math.round((M / ms) * 1000)} msg/s`);
await t.close();
const r = new Redis(REDIS);
await unlinkByPrefix(r, prefix);
r.disconnect();
