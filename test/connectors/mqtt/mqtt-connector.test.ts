// The MQTT connector over loopback with real clients: the `mqtt` npm client at MQTT
// 3.1.1 and 5, raw sockets for bad input, and the mosquitto CLIs.
import { describe, it, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { connect as netConnect, type Socket } from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';
import { spawn } from 'node:child_process';
import { connect as mqttConnect, type IClientOptions, type MqttClient } from 'mqtt';
import { generate, parser as mqttParser, type IConnackPacket, type IDisconnectPacket, type Packet } from 'mqtt-packet';
import { Hub } from '../../../src/hub/hub.js';
import type { Connection } from '../../../src/hub/connection.js';
import { LocalBus } from '../../../src/bus/local-bus.js';
import { openSqliteStorage } from '../../../src/store/sqlite-storage.js';
import { createLogger } from '../../../src/log.js';
import { asClientId, asMessageId } from '../../../src/ids.js';
import type { App, Storage, Target } from '../../../src/store/store.js';
import { MqttConnector } from '../../../src/connectors/mqtt/index.js';
import type { EventEmitter } from 'node:events';
import { once as onceEvent, waitFor, withTimeout } from '../../fixtures/wait.js';

const VERSIONS = [4, 5] as const;
type Version = (typeof VERSIONS)[number];

const ALL: Target = { all: true, clientIds: [], tags: [] };
const to = (...ids: string[]): Target => ({ all: false, clientIds: ids.map(asClientId), tags: [] });
const toTags = (...tags: string[]): Target => ({ all: false, clientIds: [], tags });

interface Received {
  readonly topic: string;
  readonly body: { readonly id?: number; readonly event: string; readonly data: unknown };
  readonly qos: number;
}

describe('MQTT connector', () => {
  let storage: Storage;
  let hub: Hub;
  let connector: MqttConnector;
  let port: number;
  let app: App;
  let other: App;
  let acks: number[];
  let tagCalls: string[][];
  let resumes: unknown[];
  const clients: MqttClient[] = [];
  const sockets: Socket[] = [];

  beforeEach(async () => {
    storage = openSqliteStorage(':memory:');
    hub = new Hub({ storage, bus: new LocalBus(), logger: createLogger('silent'), maxBufferedBytes: 256 * 1024 });
    app = await storage.apps.createApp({ name: 'mqtt' });
    other = await storage.apps.createApp({ name: 'other' });
    // Spies: what the connector asks of the hub.
    acks = [];
    tagCalls = [];
    resumes = [];
    const ack = hub.ack.bind(hub);
    hub.ack = (conn: Connection, id: number): void => {
      acks.push(id);
      ack(conn, id);
    };
    const subscribeTags = hub.subscribeTags.bind(hub);
    hub.subscribeTags = (conn: Connection, tags: readonly string[]): Promise<void> => {
      tagCalls.push([...tags]);
      return subscribeTags(conn, tags);
    };
    const enterClient = hub.enterClient.bind(hub);
    hub.enterClient = (conn, req) => {
      resumes.push(req.resumeAfter);
      return enterClient(conn, req);
    };
    connector = new MqttConnector({ hub, log: createLogger('silent'), host: '127.0.0.1', port: 0, maxPacketBytes: 64 * 1024, connectTimeoutMs: 500 });
    port = await connector.listen();
  });

  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.endAsync(true)));
    for (const s of sockets.splice(0)) s.destroy();
    await connector.close();
    await hub.close();
    await storage.close();
  });

  const received = new WeakMap<MqttClient, Received[]>();

  /** An mqtt client, connected; what it receives is collected from the start (see `collect`). */
  async function client(version: Version, clientId: string, opts: IClientOptions = {}): Promise<MqttClient> {
    const c = mqttConnect(`mqtt://127.0.0.1:${port}`, {
      protocolVersion: version,
      clientId,
      username: app.apikey,
      reconnectPeriod: 0,
      connectTimeout: 3000,
      ...opts,
    });
    clients.push(c);
    const got: Received[] = [];
    received.set(c, got);
    c.on('message', (topic, payload, packet) => {
      got.push({ topic, body: JSON.parse(payload.toString('utf8')) as Received['body'], qos: packet.qos });
    });
    await once(c, 'connect', 3000);
    return c;
  }

  function collect(c: MqttClient): Received[] {
    return received.get(c)!;
  }

  function connack(c: MqttClient): IConnackPacket {
    // mqtt.js keeps the CONNACK it got; its typings call the field private.
    return (c as unknown as { connackPacket: IConnackPacket }).connackPacket;
  }

  /** The CONNACK code of a refused connection. */
  async function refusal(opts: IClientOptions): Promise<number | undefined> {
    const c = mqttConnect(`mqtt://127.0.0.1:${port}`, { reconnectPeriod: 0, connectTimeout: 3000, ...opts });
    clients.push(c);
    const err = await once(c, 'connect', 3000).then(
      () => undefined,
      (e: unknown) => e as { code?: number },
    );
    assert.ok(err, 'the connection was accepted');
    return err.code;
  }

  const online = (clientId: string): Promise<void> =>
    waitFor(() => hub.onlineClients(app.apikey).some((c) => c.clientId === clientId), { timeoutMs: 3000, message: `${clientId} online` });

  for (const version of VERSIONS) {
    describe(`MQTT ${version === 4 ? '3.1.1' : '5'}`, () => {
      it('delivers broadcasts, per-client and tag messages on their topics, and acks on PUBACK', async () => {
        const c = await client(version, 'phone-1');
        const got = collect(c);
        const grants = await c.subscribeAsync([`apps/${app.apikey}/all`, `apps/${app.apikey}/clients/phone-1`, `apps/${app.apikey}/tags/news`], { qos: 2 });
        assert.deepEqual(grants.map((g) => g.qos), [1, 1, 1], 'QoS 2 requested, 1 granted');
        assert.deepEqual(tagCalls, [['news']]);

        const b = await hub.publish({ apikey: app.apikey, target: ALL, event: 'onMsg', data: { hello: '世界' } });
        const p = await hub.publish({ apikey: app.apikey, target: to('phone-1'), event: 'onMsg', data: 'just you' });
        const t = await hub.publish({ apikey: app.apikey, target: toTags('news'), event: 'onNews', data: { n: 1 } });
        await waitFor(() => got.length === 3, { timeoutMs: 3000, message: 'three messages' });
        assert.deepEqual(got, [
          { topic: `apps/${app.apikey}/all`, body: { id: b.message.id, event: 'onMsg', data: { hello: '世界' } }, qos: 1 },
          { topic: `apps/${app.apikey}/clients/phone-1`, body: { id: p.message.id, event: 'onMsg', data: 'just you' }, qos: 1 },
          { topic: `apps/${app.apikey}/tags/news`, body: { id: t.message.id, event: 'onNews', data: { n: 1 } }, qos: 1 },
        ]);
        // The mqtt client PUBACKs each one: the hub hears each id, in order.
        await waitFor(() => acks.length === 3, { timeoutMs: 3000, message: 'three acks' });
        assert.deepEqual(acks, [b.message.id, p.message.id, t.message.id]);
      });

      it('delivers a message targeted several ways once, on the most specific topic', async () => {
        const c = await client(version, 'tablet');
        const plain = await client(version, 'plain');
        const got = collect(c);
        const gotPlain = collect(plain);
        await c.subscribeAsync(`apps/${app.apikey}/tags/sport`);
        const both = await hub.publish({ apikey: app.apikey, target: { all: true, clientIds: [asClientId('tablet')], tags: ['sport'] }, event: 'onMsg', data: 1 });
        const tagAndAll = await hub.publish({ apikey: app.apikey, target: { all: true, clientIds: [], tags: ['sport'] }, event: 'onMsg', data: 2 });
        await waitFor(() => got.length === 2 && gotPlain.length === 2, { timeoutMs: 3000, message: 'deliveries' });
        assert.deepEqual(
          got.map((r) => [r.topic, r.body.id]),
          [
            [`apps/${app.apikey}/clients/tablet`, both.message.id],
            [`apps/${app.apikey}/tags/sport`, tagAndAll.message.id],
          ],
        );
        assert.deepEqual(
          gotPlain.map((r) => r.topic),
          [`apps/${app.apikey}/all`, `apps/${app.apikey}/all`],
        );
      });

      it('refuses forbidden subscriptions and still grants the others in the same SUBSCRIBE', async () => {
        const c = await client(version, 'phone-2');
        const forbidden = [
          `apps/${other.apikey}/all`,
          `apps/${app.apikey}/clients/someone-else`,
          `apps/${app.apikey}/#`,
          `apps/${app.apikey}/+/phone-2`,
          '#',
          `$share/group/apps/${app.apikey}/all`,
          `apps/${app.apikey}/presence`,
        ];
        const err = await c.subscribeAsync([`apps/${app.apikey}/all`, ...forbidden], { qos: 0 }).then(
          () => undefined,
          (e: unknown) => e as { packet?: { granted?: number[] } },
        );
        const no = version === 5 ? 0x87 : 0x80;
        assert.deepEqual(err?.packet?.granted, [0, ...forbidden.map(() => no)]);
        // QoS 0 granted on the only subscription: delivery is QoS 0, acked on write.
        const got = collect(c);
        const m = await hub.publish({ apikey: app.apikey, target: ALL, event: 'onMsg', data: 'q0' });
        await waitFor(() => got.length === 1, { timeoutMs: 3000, message: 'the message' });
        assert.equal(got[0]!.qos, 0);
        await waitFor(() => acks.includes(m.message.id), { timeoutMs: 3000, message: 'the QoS 0 ack' });
        // UNSUBSCRIBE: back to the default QoS 1.
        await c.unsubscribeAsync(`apps/${app.apikey}/all`);
        await hub.publish({ apikey: app.apikey, target: ALL, event: 'onMsg', data: 'q1' });
        await waitFor(() => got.length === 2, { timeoutMs: 3000, message: 'the second message' });
        assert.equal(got[1]!.qos, 1);
      });

      it('refuses unknown apps, wrong secrets and passwords, missing usernames and empty client ids', async () => {
        const bad = version === 5 ? 0x86 : 4;
        assert.equal(await refusal({ protocolVersion: version, clientId: 'x', username: 'no-such-app' }), bad);
        assert.equal(await refusal({ protocolVersion: version, clientId: 'x', username: app.apikey, password: 'wrong-secret' }), bad);
        assert.equal(await refusal({ protocolVersion: version, clientId: 'x', username: app.apikey, password: other.secret }), bad);
        assert.equal(await refusal({ protocolVersion: version, clientId: 'x' }), bad);
        // mqtt.js replaces an empty client id, so this one goes out raw.
        const peer = await rawPeer(port, sockets, version);
        peer.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: version, clean: true, clientId: '', keepalive: 0, username: app.apikey });
        const connack = await peer.next('connack');
        assert.equal(version === 5 ? connack.reasonCode : connack.returnCode, version === 5 ? 0x85 : 2);
        await peer.closed;
        assert.equal(hub.connectionCount, 0);
      });

      it('managers push to apps/{apikey}/push (stored before PUBACK) and receive presence at QoS 0', async () => {
        const manager = await client(version, 'backend', { password: app.secret });
        const presence = collect(manager);
        await manager.subscribeAsync(`apps/${app.apikey}/presence`);
        const c = await client(version, 'phone-3');
        const got = collect(c);
        await waitFor(() => presence.length === 1, { timeoutMs: 3000, message: 'onAdd' });
        assert.deepEqual(presence[0], {
          topic: `apps/${app.apikey}/presence`,
          body: { event: 'onAdd', data: { msg: 'add ok', users: ['phone-3'] } },
          qos: 0,
        });

        await manager.publishAsync(`apps/${app.apikey}/push`, JSON.stringify({ event: 'onPromo', data: { sale: 30 }, to: { clientIds: ['phone-3'] } }), { qos: 1 });
        // PUBACK came after the store: the message is there now.
        const [stored] = await storage.messages.history(app.apikey, { limit: 1 });
        assert.equal(stored?.event, 'onPromo');
        assert.deepEqual(stored?.target.clientIds, ['phone-3']);
        await waitFor(() => got.length === 1, { timeoutMs: 3000, message: 'the push' });
        assert.deepEqual(got[0], { topic: `apps/${app.apikey}/clients/phone-3`, body: { id: stored.id, event: 'onPromo', data: { sale: 30 } }, qos: 1 });

        await c.endAsync();
        await waitFor(() => presence.length === 2, { timeoutMs: 3000, message: 'onLeave' });
        assert.equal(presence[1]!.body.event, 'onLeave');
      });

      it('refuses a bad push: MQTT 5 with a PUBACK reason code, MQTT 3.1.1 by closing', async () => {
        const manager = await client(version, 'backend', { password: app.secret });
        if (version === 5) {
          const codeOf = (p: Promise<unknown>): Promise<number | undefined> => p.then(() => undefined, (e: unknown) => (e as { code?: number }).code);
          assert.equal(await codeOf(manager.publishAsync(`apps/${app.apikey}/push`, 'not json', { qos: 1 })), 0x99);
          assert.equal(await codeOf(manager.publishAsync(`apps/${app.apikey}/push`, '{"event":"x"}', { qos: 1 })), 0x99);
          assert.equal(await codeOf(manager.publishAsync(`apps/${app.apikey}/elsewhere`, '{"data":1}', { qos: 1 })), 0x90);
          assert.equal(manager.connected, true);
        } else {
          const closed = once(manager, 'close', 3000);
          manager.publish(`apps/${app.apikey}/push`, 'not json', { qos: 1 });
          await closed;
        }
        assert.deepEqual(await storage.messages.history(app.apikey, { limit: 10 }), []);
      });

      it('does not let clients publish: MQTT 5 PUBACK 0x87, MQTT 3.1.1 closes', async () => {
        const c = await client(version, 'phone-4');
        if (version === 5) {
          const code = await c.publishAsync(`apps/${app.apikey}/push`, '{"data":1}', { qos: 1 }).then(
            () => undefined,
            (e: unknown) => (e as { code?: number }).code,
          );
          assert.equal(code, 0x87);
          assert.equal(c.connected, true);
        } else {
          const closed = once(c, 'close', 3000);
          c.publish(`apps/${app.apikey}/push`, '{"data":1}', { qos: 1 });
          await closed;
        }
        assert.deepEqual(await storage.messages.history(app.apikey, { limit: 10 }), []);
      });

      it('resumes a persistent session: what was pushed while offline arrives on reconnect', async () => {
        const first = await client(version, 'phone-5', { clean: false, ...(version === 5 ? { properties: { sessionExpiryInterval: 3600 } } : {}) });
        const got1 = collect(first);
        const before = await hub.publish({ apikey: app.apikey, target: to('phone-5'), event: 'onMsg', data: 'online' });
        await waitFor(() => acks.includes(before.message.id), { timeoutMs: 3000, message: 'the first ack' });
        assert.equal(got1.length, 1);
        await first.endAsync();
        await waitFor(() => hub.onlineClients(app.apikey).length === 0, { timeoutMs: 3000, message: 'left' });
        await hub.flush();

        const offline = await hub.publish({ apikey: app.apikey, target: to('phone-5'), event: 'onMsg', data: 'while away' });
        const broadcast = await hub.publish({ apikey: app.apikey, target: ALL, event: 'onMsg', data: 'to all' });
        const second = await client(version, 'phone-5', { clean: false });
        const got2 = collect(second);
        assert.equal(connack(second).sessionPresent, true);
        assert.deepEqual(resumes, ['stored', 'stored']);
        await waitFor(() => got2.length === 2, { timeoutMs: 3000, message: 'the stored messages' });
        assert.deepEqual(
          got2.map((r) => [r.topic, r.body.id]),
          [
            [`apps/${app.apikey}/clients/phone-5`, offline.message.id],
            [`apps/${app.apikey}/all`, broadcast.message.id],
          ],
        );
      });

      it('starts a clean session at the newest message', async () => {
        const first = await client(version, 'phone-6');
        await first.endAsync();
        await hub.publish({ apikey: app.apikey, target: to('phone-6'), event: 'onMsg', data: 'missed' });
        const second = await client(version, 'phone-6');
        assert.equal(connack(second).sessionPresent, false);
        const got = collect(second);
        const live = await hub.publish({ apikey: app.apikey, target: to('phone-6'), event: 'onMsg', data: 'live' });
        await waitFor(() => got.length === 1, { timeoutMs: 3000, message: 'the live message' });
        assert.equal(got[0]!.body.id, live.message.id);
        assert.deepEqual(resumes, ['fresh', 'fresh']);
      });

      it('closes a replaced connection; MQTT 5 says "session taken over"', async () => {
        const first = await client(version, 'phone-7');
        const disconnect = version === 5 ? once(first, 'disconnect', 3000) : undefined;
        const closed = once(first, 'close', 3000);
        const second = await client(version, 'phone-7');
        if (disconnect) {
          const [packet] = (await disconnect) as [IDisconnectPacket];
          assert.equal(packet.reasonCode, 0x8e);
          assert.equal(packet.properties?.reasonString, 'replaced');
        }
        await closed;
        assert.equal(second.connected, true);
        assert.equal(hub.onlineClients(app.apikey).length, 1);
      });

      it('answers PINGREQ and closes a client silent for 1.5 × keep-alive', async () => {
        const pinging = await client(version, 'pinger', { keepalive: 1 });
        const peer = await rawPeer(port, sockets, version);
        peer.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: version, clean: true, clientId: 'silent', keepalive: 1, username: app.apikey });
        await peer.next('connack');
        peer.send({ cmd: 'pingreq' });
        await peer.next('pingresp');
        const start = Date.now();
        await withTimeout(peer.closed, 3000, 'the keep-alive close');
        const took = Date.now() - start;
        assert.ok(took >= 1400 && took <= 2400, `closed after ${took} ms`);
        if (version === 5) assert.equal(peer.packets.find((p): p is IDisconnectPacket => p.cmd === 'disconnect')?.reasonCode, 0x8d);
        assert.equal(pinging.connected, true);
      });

      it('closes on malformed and oversized input while other clients keep receiving', async () => {
        const bystander = await client(version, 'bystander');
        const got = collect(bystander);
        // Bytes that are not MQTT.
        const garbage = await rawPeer(port, sockets, version);
        garbage.socket.write(Buffer.from('GET / HTTP/1.1\r\n\r\n'));
        // A first packet that is not CONNECT (MQTT-3.1.0-1).
        const early = await rawPeer(port, sockets, version);
        early.send({ cmd: 'pingreq' });
        // A header declaring a 256 MB body: closed on the declared length, before it arrives.
        const huge = await rawPeer(port, sockets, version);
        huge.socket.write(Buffer.from([0x10, 0xff, 0xff, 0xff, 0x7f]));
        // After CONNECT: a packet over maxPacketBytes, and a second CONNECT.
        const big = await rawPeer(port, sockets, version);
        big.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: version, clean: true, clientId: 'big', keepalive: 0, username: app.apikey });
        await big.next('connack');
        big.socket.write(Buffer.from([0x32, 0xff, 0xff, 0x7f]));
        const twice = await rawPeer(port, sockets, version);
        const connect = { cmd: 'connect', protocolId: 'MQTT', protocolVersion: version, clean: true, clientId: 'twice', keepalive: 0, username: app.apikey } as const;
        twice.send(connect);
        await twice.next('connack');
        twice.send(connect);
        await withTimeout(Promise.all([garbage.closed, early.closed, huge.closed, big.closed, twice.closed]), 2000, 'the bad peers closing');
        if (version === 5) {
          const reason = (p: RawPeer): number | undefined => p.packets.find((x): x is IDisconnectPacket => x.cmd === 'disconnect')?.reasonCode;
          assert.equal(reason(big), 0x95);
          assert.equal(reason(twice), 0x82);
        }
        const m = await hub.publish({ apikey: app.apikey, target: ALL, event: 'onMsg', data: 'still here' });
        await waitFor(() => got.length === 1, { timeoutMs: 3000, message: 'the bystander message' });
        assert.equal(got[0]!.body.id, m.message.id);
        await waitFor(() => connector.connectionCount === 1, { timeoutMs: 3000, message: 'only the bystander left' });
      });

      it('says why on shutdown (MQTT 5: server shutting down)', async () => {
        const c = await client(version, 'phone-8');
        const disconnect = version === 5 ? once(c, 'disconnect', 3000) : undefined;
        const closed = once(c, 'close', 3000);
        await connector.close();
        if (disconnect) {
          const [packet] = (await disconnect) as [IDisconnectPacket];
          assert.equal(packet.reasonCode, 0x8b);
        }
        await closed;
        assert.equal(connector.connectionCount, 0);
      });

      it('works with mosquitto_sub and mosquitto_pub', async () => {
        const v = version === 5 ? '5' : 'mqttv311';
        const sub = run('mosquitto_sub', ['-h', '127.0.0.1', '-p', String(port), '-u', app.apikey, '-i', 'mosq-sub', '-t', `apps/${app.apikey}/all`, '-C', '1', '-W', '5', '-V', v]);
        await online('mosq-sub');
        const m = await hub.publish({ apikey: app.apikey, target: ALL, event: 'onMsg', data: { via: 'mosquitto' } });
        const out = await sub;
        assert.equal(out.code, 0, out.stderr);
        assert.deepEqual(JSON.parse(out.stdout), { id: m.message.id, event: 'onMsg', data: { via: 'mosquitto' } });

        const c = await client(version, 'phone-9');
        const got = collect(c);
        const body = JSON.stringify({ data: 'from mosquitto_pub', to: { clientIds: ['phone-9'] } });
        const pub = await run('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(port), '-u', app.apikey, '-P', app.secret, '-i', 'mosq-pub', '-t', `apps/${app.apikey}/push`, '-q', version === 5 ? '2' : '1', '-m', body, '-V', v]);
        assert.equal(pub.code, 0, pub.stderr);
        await waitFor(() => got.length === 1, { timeoutMs: 3000, message: 'the mosquitto_pub push' });
        assert.equal(got[0]!.body.data, 'from mosquitto_pub');
        assert.equal((await storage.messages.history(app.apikey, { limit: 10 })).length, 2, 'QoS 2 stored once');
      });
    });
  }

  it('closes a slow consumer and resends everything, in order, when it resumes', async () => {
    // A raw MQTT 5 client with a Receive Maximum of 10 that never PUBACKs: after 10
    // messages in flight the rest wait in the connection's queue, which counts toward
    // the hub's cap (256 KiB here), and the cap closes it.
    const slow = await rawPeer(port, sockets, 5);
    slow.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clean: false, clientId: 'slow', keepalive: 0, username: app.apikey, properties: { receiveMaximum: 10, sessionExpiryInterval: 3600 } });
    await slow.next('connack');
    const data = 'x'.repeat(1024);
    const ids: number[] = [];
    for (let i = 0; i < 400; i++) ids.push((await hub.publish({ apikey: app.apikey, target: ALL, event: 'onMsg', data })).message.id);
    await waitFor(() => slow.packets.some((p) => p.cmd === 'disconnect'), { timeoutMs: 3000, message: 'the DISCONNECT' });
    assert.equal(slow.packets.find((p): p is IDisconnectPacket => p.cmd === 'disconnect')?.reasonCode, 0x97);
    assert.equal(slow.packets.filter((p) => p.cmd === 'publish').length, 10);
    await slow.closed;

    const again = await client(5, 'slow', { clean: false, properties: { sessionExpiryInterval: 3600 } });
    const got = collect(again);
    await waitFor(() => got.length === ids.length, { timeoutMs: 8000, message: 'every message again' });
    assert.deepEqual(
      got.map((r) => r.body.id),
      ids,
    );
  });

  it('QoS 1 delivery carries on across idle periods: ids unique while in flight, every ack reaches the hub', async () => {
    // The connection drops its delivery state at a PINGREQ once all is acked, and keeps
    // it while anything is in flight (mqtt-connection.ts, Outbound).
    const peer = await rawPeer(port, sockets);
    peer.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: 'idler', keepalive: 0, username: app.apikey });
    await peer.next('connack');
    peer.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: `apps/${app.apikey}/all`, qos: 1 }] });
    await peer.next('suback');
    const publish = async (): Promise<{ id: number; packetId: number }> => {
      const id = (await hub.publish({ apikey: app.apikey, target: ALL, event: 'onMsg', data: 'x' })).message.id;
      const p = await peer.next('publish');
      assert.equal(p.qos, 1);
      assert.equal((JSON.parse(p.payload.toString()) as { id: number }).id, id);
      return { id, packetId: p.messageId! };
    };

    // Settled, then idle: the state goes; the next messages are delivered and acked as before.
    const first = [await publish(), await publish()];
    for (const m of first) peer.send({ cmd: 'puback', messageId: m.packetId });
    await waitFor(() => acks.includes(first[1]!.id), { timeoutMs: 3000, message: 'the ack of the second message' });
    peer.send({ cmd: 'pingreq' });
    await peer.next('pingresp');
    const second = await publish();
    peer.send({ cmd: 'puback', messageId: second.packetId });
    await waitFor(() => acks.includes(second.id), { timeoutMs: 3000, message: 'the ack after the idle period' });

    // Idle with a message in flight: the state stays, and the next packet id is another.
    const unacked = await publish();
    peer.send({ cmd: 'pingreq' });
    await peer.next('pingresp');
    const next = await publish();
    assert.notEqual(next.packetId, unacked.packetId, 'a packet id still in flight is not reused');
    peer.send({ cmd: 'puback', messageId: next.packetId });
    await delay(50);
    assert.ok(!acks.includes(next.id), 'no ack past a message still in flight');
    peer.send({ cmd: 'puback', messageId: unacked.packetId });
    await waitFor(() => acks.includes(next.id), { timeoutMs: 3000, message: 'the cumulative ack once both are acked' });
    assert.deepEqual([...acks].sort((a, b) => a - b), acks, 'acks only move forward');
  });

  it("MQTT 5: publishes over the client's Maximum Packet Size are skipped, recorded as skipped (never delivered or acked)", async () => {
    const peer = await rawPeer(port, sockets, 5);
    peer.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clean: true, clientId: 'small', keepalive: 0, username: app.apikey, properties: { maximumPacketSize: 300 } });
    await peer.next('connack');
    peer.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: `apps/${app.apikey}/all`, qos: 1 }] });
    await peer.next('suback');
    const ids: number[] = [];
    for (const data of ['small one', 'x'.repeat(1000), 'small two']) ids.push((await hub.publish({ apikey: app.apikey, target: ALL, event: 'onMsg', data })).message.id);
    const got: number[] = [];
    for (let i = 0; i < 2; i++) {
      const p = await peer.next('publish');
      assert.ok(p.length === undefined || p.length <= 300);
      got.push((JSON.parse(p.payload.toString()) as { id: number }).id);
      peer.send({ cmd: 'puback', messageId: p.messageId! });
    }
    assert.deepEqual(got, [ids[0], ids[2]]);
    await waitFor(() => acks.includes(ids[2]!), { timeoutMs: 3000, message: 'the ack past the skipped message' });
    assert.equal(peer.packets.filter((p) => p.cmd === 'publish').length, 0);
    await hub.flush();
    const receipts = await Promise.all(ids.map(async (id) => (await storage.messages.receipt(app.apikey, asMessageId(id)))?.receipt));
    assert.deepEqual(receipts, [
      { targeted: 1, delivered: 1, acked: 1, skipped: 0 },
      { targeted: 1, delivered: 0, acked: 0, skipped: 1 },
      { targeted: 1, delivered: 1, acked: 1, skipped: 0 },
    ]);
  });

  it('MQTT 5: PUBACK refusals carry a reason string unless the client asked for none (Request Problem Information 0)', async () => {
    const refusalOf = async (clientId: string, properties: { requestProblemInformation?: boolean }) => {
      const peer = await rawPeer(port, sockets, 5);
      peer.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clean: true, clientId, keepalive: 0, username: app.apikey, properties });
      await peer.next('connack');
      // A client may not publish: PUBACK 0x87 (not authorized), the connection stays.
      peer.send({ cmd: 'publish', topic: `apps/${app.apikey}/push`, payload: Buffer.from('{"data":1}'), qos: 1, messageId: 7, retain: false, dup: false });
      return peer.next('puback');
    };
    const told = await refusalOf('wants-why', {});
    assert.equal(told.reasonCode, 0x87);
    assert.match(told.properties?.reasonString ?? '', /clients may not publish/);
    const quiet = await refusalOf('no-why', { requestProblemInformation: false });
    assert.equal(quiet.reasonCode, 0x87);
    assert.equal(quiet.properties?.reasonString, undefined);
  });

  it('answers an unknown protocol level with CONNACK 0x01 (MQTT-3.1.2-2)', async () => {
    const peer = await rawPeer(port, sockets);
    const connect = generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: 'x', keepalive: 0 });
    connect[8] = 6; // the protocol level byte, after 0x10, length, 0x00 0x04 "MQTT"
    peer.socket.write(connect);
    const connack = await peer.next('connack');
    assert.equal(connack.returnCode, 1);
    await peer.closed;
  });

  it('drops a socket that sends no CONNECT within connectTimeoutMs', async () => {
    const peer = await rawPeer(port, sockets);
    const start = Date.now();
    await withTimeout(peer.closed, 2000, 'the CONNECT deadline');
    assert.ok(Date.now() - start >= 450);
  });

  it('sends an unacknowledged message again when a persistent session comes back', async () => {
    // An MQTT 5 client that never PUBACKs (mqtt.js leaves acks to customHandleAcks).
    const seen: number[] = [];
    const c = await client(5, 'no-acks', {
      clean: false,
      properties: { sessionExpiryInterval: 3600 },
      customHandleAcks: (_topic, message) => {
        seen.push((JSON.parse(message.toString('utf8')) as { id: number }).id);
      },
    });
    const m = await hub.publish({ apikey: app.apikey, target: to('no-acks'), event: 'onMsg', data: 'again' });
    await waitFor(() => seen.length === 1, { timeoutMs: 3000, message: 'the message' });
    assert.deepEqual(acks, []);
    await c.endAsync(true);
    await waitFor(() => hub.onlineClients(app.apikey).length === 0, { timeoutMs: 3000, message: 'left' });
    const again = await client(5, 'no-acks', { clean: false, properties: { sessionExpiryInterval: 3600 } });
    const got = collect(again);
    await waitFor(() => got.length === 1, { timeoutMs: 3000, message: 'the resend' });
    assert.equal(got[0]!.body.id, m.message.id);
    await waitFor(() => acks.includes(m.message.id), { timeoutMs: 3000, message: 'the ack' });
  });
});

/** `once` for mqtt.js clients too (their typed emitter is not an EventEmitter to TypeScript). */
function once(emitter: MqttClient | EventEmitter, event: string, timeoutMs: number): Promise<unknown[]> {
  return onceEvent(emitter as EventEmitter, event, timeoutMs);
}

interface RawPeer {
  readonly socket: Socket;
  readonly packets: Packet[];
  readonly closed: Promise<void>;
  send(packet: Packet): void;
  next<C extends Packet['cmd']>(cmd: C): Promise<Extract<Packet, { cmd: C }>>;
}

/** A raw TCP peer that speaks MQTT through mqtt-packet, for input the mqtt client would never send. */
async function rawPeer(port: number, sockets: Socket[], version: Version = 4): Promise<RawPeer> {
  const socket = netConnect(port, '127.0.0.1');
  sockets.push(socket);
  await once(socket, 'connect', 3000);
  const packets: Packet[] = [];
  const parse = mqttParser({ protocolVersion: version });
  parse.on('packet', (p: Packet) => packets.push(p));
  parse.on('error', () => undefined);
  socket.on('data', (chunk: Buffer) => parse.parse(chunk));
  socket.on('error', () => undefined);
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  return {
    socket,
    packets,
    closed,
    send(packet) {
      socket.write(generate(packet, { protocolVersion: version }));
    },
    async next(cmd) {
      let found: Packet | undefined;
      await waitFor(
        () => {
          found = packets.find((p) => p.cmd === cmd);
          return found !== undefined;
        },
        { timeoutMs: 3000, message: `a ${cmd}` },
      );
      packets.splice(packets.indexOf(found!), 1);
      return found as Extract<Packet, { cmd: typeof cmd }>;
    },
  };
}

/** Runs a CLI to its end (bounded by a timeout) and returns its output. */
function run(cmd: string, args: readonly string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString('utf8')));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString('utf8')));
  const done = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
  return withTimeout(done, 8000, `${cmd}`).finally(() => child.kill());
}
