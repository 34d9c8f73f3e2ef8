// The receipts' cost of acks, in one process, no sockets: C clients of one app on one
// hub, M broadcasts, every client acking each one as it arrives (what MQTT QoS 0 and SSE
// do, and the worst case for receipts). Prints the hub's time for delivery + ack, the
// time of the receipt flushes, CPU, and checks the last receipt is exact.
//
//   node --import tsx bench/micro/acks.ts [clients=10000] [broadcasts=200]
//
// At 8032ad4 (acks counted per message in memory, at most 1,000 per client) and after
// acks became ranges the store resolves (issue 15), three runs each on the same busy
// 2-core machine, Node 20: delivery + ack 106-111 → 73-83 ns per client and message; the
// last flush 20-46 → 86-90 ms; total CPU 233-288 → 260-294 ms.
import { Hub } from '../../src/hub/hub.js';
import { LocalBus } from '../../src/bus/local-bus.js';
import { openSqliteStorage } from '../../src/store/sqlite-storage.js';
import { createLogger } from '../../src/log.js';
import { allocateConnectionId, type Connection, type PushEncoder } from '../../src/hub/connection.js';
import type { Member } from '../../src/hub/members.js';
import type { EnteredAs } from '../../src/hub/observer.js';
import { asMessageId } from '../../src/ids.js';
import type { StoredMessage } from '../../src/store/store.js';

const clients = Number(process.argv[2] ?? 10_000);
const broadcasts = Number(process.argv[3] ?? 200);

/** Bytes are the message id: a write only remembers it, for the ack. */
const encoder: PushEncoder<number> = { encodeMessage: (m: StoredMessage) => m.id, encodeEvent: () => 0 };

class Quiet implements Connection<number> {
  readonly id = allocateConnectionId();
  readonly connector = 'ws' as const;
  readonly encoder = encoder;
  readonly remoteAddress = '127.0.0.1';
  readonly connectedAt = Date.now();
  readonly bufferedBytes = 0;
  readonly closed = false;
  hubMember: Member | undefined = undefined;
  enteredAs: EnteredAs | undefined = undefined;
  last = 0;
  write(id: number): void {
    this.last = id;
  }
  close(): void {}
}

const storage = openSqliteStorage(':memory:');
const hub = new Hub({ storage, bus: new LocalBus(), logger: createLogger('silent'), maxBufferedBytes: 1 << 30 });
const app = (await storage.apps.createApp({ name: 'bench' })).apikey;
const conns: Quiet[] = [];
for (let i = 0; i < clients; i++) {
  const c = new Quiet();
  await (await hub.enterClient(c, { apikey: app, clientId: `c${i}` })).replayed;
  conns.push(c);
}
const cpu0 = process.cpuUsage();
const t0 = performance.now();
let last = 0;
for (let j = 0; j < broadcasts; j++) {
  last = (await hub.publish({ apikey: app, target: { all: true, clientIds: [], tags: [] }, event: 'onMsg', data: j })).message.id;
  for (const c of conns) hub.ack(c, c.last);
}
const t1 = performance.now();
await hub.flush();
const t2 = performance.now();
const cpu = process.cpuUsage(cpu0);
const receipt = (await storage.messages.receipt(app, asMessageId(last)))?.receipt;
const ns = ((t1 - t0) * 1e6) / (clients * broadcasts);
console.log(
  `${clients} clients × ${broadcasts} broadcasts, each acked: delivery + ack ${ns.toFixed(0)} ns per client and message, ` +
    `last flush ${(t2 - t1).toFixed(0)} ms, cpu ${((cpu.user + cpu.system) / 1000).toFixed(0)} ms; last receipt ${JSON.stringify(receipt)}`,
);
await hub.close();
await storage.close();
if (receipt?.delivered !== clients || receipt.acked !== clients) process.exit(1);
