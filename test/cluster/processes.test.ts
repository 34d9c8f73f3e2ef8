// Three nodes as separate processes on the shared Redis (one key prefix for this file):
// every connector on some node, pushes accepted anywhere, managers that see the whole
// cluster, takeover across nodes, and bus traffic counted per message, not per client.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { connectAny, type AnyClient, type ConnectorKind } from '../fixtures/any-client.js';
import { PomeloClient } from '../fixtures/pomelo-client.js';
import { deletePrefix, pushVia, startNode, TEST_REDIS, type NodeProcess } from '../fixtures/cluster-nodes.js';
import { waitFor, withTimeout } from '../fixtures/wait.js';
import { RedisMonitor } from '../fixtures/redis-monitor.js';

describe('a cluster of three node processes', { timeout: 180_000 }, () => {
  const prefix = `shaddock-test:${randomUUID()}:`;
  let nodes: NodeProcess[] = [];
  const clients: AnyClient[] = [];
  const pomelos: PomeloClient[] = [];

  before(async () => {
    const first = await startNode({ prefix, name: 'n1' });
    nodes = [first, ...(await Promise.all(['n2', 'n3'].map((name) => startNode({ prefix, name, app: first.app }))))];
  });
  after(async () => {
    await Promise.all(clients.map((c) => c.close().catch(() => undefined)));
    await Promise.all(pomelos.map((c) => c.close().catch(() => undefined)));
    await Promise.all(nodes.map((n) => n.stop()));
    await deletePrefix(prefix);
  });

  const node = (i: number): NodeProcess => nodes[i]!;

  it('a push accepted by any node reaches every connector on every node, in id order', async () => {
    const placement: [ConnectorKind, number][] = [
      ['hybrid-tcp', 0],
      ['sio', 0],
      ['hybrid-ws', 1],
      ['mqtt', 1],
      ['ws', 2],
      ['sse', 2],
    ];
    const here = await Promise.all(placement.map(([kind, i]) => connectAny(node(i), kind, `every-${kind}`)));
    clients.push(...here);
    const ids: number[] = [];
    // Through all three nodes at once, so their messages interleave on the bus.
    for (let round = 0; round < 10; round++) {
      ids.push(...(await Promise.all(nodes.map((n, i) => pushVia(n, { data: { round, via: i } })))));
    }
    ids.sort((a, b) => a - b);
    for (const c of here) {
      await waitFor(() => c.received.length >= ids.length, { timeoutMs: 15_000, message: `${c.kind}: ${c.received.length} of ${ids.length}` });
      assert.deepEqual(
        c.received.map((r) => r.id),
        ids,
        `${c.kind} got every message once, in id order`,
      );
    }
  });

  it('a manager on one node sees clients on the others join and leave, and the API lists the whole cluster', async () => {
    const manager = await PomeloClient.connect({ host: '127.0.0.1', port: node(0).server.hybridPort, transport: 'tcp' });
    pomelos.push(manager);
    const adds: string[][] = [];
    const leaves: string[] = [];
    manager.on('onAdd', (body: unknown) => adds.push((body as { users: string[] }).users));
    manager.on('onLeave', (body: unknown) => leaves.push((body as { clientId: string }).clientId));
    const entered = (await manager.request('connector.entryHandler.enter', { apikey: node(0).app.apikey, role: 'server', password: node(0).app.secret })) as {
      code: number;
      users: string[];
    };
    assert.equal(entered.code, 200);
    // The clients of the first test, on all three nodes.
    assert.ok(entered.users.includes('every-ws') && entered.users.includes('every-mqtt'), `users: ${entered.users.join(',')}`);

    const far = await connectAny(node(2), 'hybrid-tcp', 'joins-on-n3');
    await waitFor(() => adds.some((users) => users.includes('joins-on-n3')), { timeoutMs: 5000, message: 'onAdd from n3' });

    const res = await fetch(`${node(1).httpUrl}/api/v1/apps/${node(1).app.apikey}/clients?search=joins-on`, {
      headers: { authorization: `Bearer ${node(1).app.secret}` },
    });
    const list = (await res.json()) as { total: number; clients: { clientId: string; node: string; connector: string }[] };
    assert.deepEqual(list.clients.map((c) => [c.clientId, c.node, c.connector]), [['joins-on-n3', 'n3', 'hybrid-tcp']]);

    await far.close();
    await waitFor(() => leaves.includes('joins-on-n3'), { timeoutMs: 5000, message: 'onLeave from n3' });
  });

  it('a clientId entering on a second node takes over: the first connection is kicked "replaced"', async () => {
    const first = await connectAny(node(0), 'hybrid-tcp', 'moves');
    const second = await connectAny(node(1), 'ws', 'moves');
    clients.push(first, second);
    assert.equal(await withTimeout(first.closedReason, 10_000, 'the kick of the first connection'), 'replaced');
    const id = await pushVia(node(2), { data: 'after the move', to: { clientIds: ['moves'] } });
    await waitFor(() => second.received.some((r) => r.id === id), { timeoutMs: 5000, message: 'push to the new connection' });
    assert.ok(!first.received.some((r) => r.id === id));
    // Still listed once, on its new node.
    const res = await fetch(`${node(2).httpUrl}/api/v1/apps/${node(2).app.apikey}/clients?search=moves`, {
      headers: { authorization: `Bearer ${node(2).app.secret}` },
    });
    const list = (await res.json()) as { clients: { clientId: string; node: string }[] };
    assert.deepEqual(list.clients.map((c) => [c.clientId, c.node]), [['moves', 'n2']]);
  });

  it('a broadcast to 300 clients over three nodes is one PUBLISH on the bus, whatever the number of clients', async (t) => {
    const many = await Promise.all(
      Array.from({ length: 300 }, (_, i) => connectAny(node(i % 3), i % 2 === 0 ? 'hybrid-tcp' : 'ws', `many-${i}`)),
    );
    clients.push(...many);
    const monitor = await RedisMonitor.open(TEST_REDIS);
    const commands: string[][] = [];
    monitor.onCommand((args) => {
      if (args.some((a) => a.startsWith(prefix))) commands.push(args);
    });
    try {
      // Presence writes of the enters above are done before the broadcast is counted.
      await new Promise((r) => setTimeout(r, 300));
      commands.length = 0;
      const id = await pushVia(node(0), { data: 'to everyone' });
      for (const c of many) await waitFor(() => c.received.some((r) => r.id === id), { timeoutMs: 10_000, message: `many: ${c.received.length}` });
      await new Promise((r) => setTimeout(r, 300)); // receipts are batched every 250 ms
      const publishes = commands.filter((a) => a[0]?.toLowerCase() === 'publish');
      assert.equal(publishes.length, 1, `PUBLISH count for one broadcast: ${publishes.length}`);
      assert.equal(publishes[0]![1], `${prefix}bus`);
      // Every Redis command of the broadcast, for the capacity model in docs/cluster.md.
      const byCommand = new Map<string, number>();
      for (const a of commands) byCommand.set(a[0]!.toLowerCase(), (byCommand.get(a[0]!.toLowerCase()) ?? 0) + 1);
      // (Client positions are flushed in batches, a write per client per flush, not per message.)
      t.diagnostic(`Redis commands during one broadcast to 300 clients: ${JSON.stringify([...byCommand])}`);
    } finally {
      monitor.close();
    }
  });
});
