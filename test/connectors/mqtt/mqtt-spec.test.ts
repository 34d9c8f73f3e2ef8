// The MQTT connector by the letter of MQTT 3.1.1 (OASIS, 2014) and MQTT 5 (OASIS, 2019):
// sessions (clean session / clean start, session present), strings that are not
// well-formed UTF-8 or hold U+0000, a PINGREQ with a body, and Receive Maximum both
// ways. Real peers (the `mqtt` npm client, mosquitto_sub) where they can say it, raw
// sockets where only bad bytes can, asserting the bytes the peer gets.
import { describe, it, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { connect as netConnect, type Socket } from 'node:net';
import { spawn } from 'node:child_process';
import type { EventEmitter } from 'node:events';
import { connect as mqttConnect, type IClientOptions, type MqttClient } from 'mqtt';
import { generate, parser as mqttParser, type IConnackPacket, type IDisconnectPacket, type Packet } from 'mqtt-packet';
import { Hub } from '../../../src/hub/hub.js';
import { LocalBus } from '../../../src/bus/local-bus.js';
import { openSqliteStorage } from '../../../src/store/sqlite-storage.js';
import { createLogger } from '../../../src/log.js';
import { asClientId } from '../../../src/ids.js';
import type { App, Storage, Target } from '../../../src/store/store.js';
import { MqttConnector } from '../../../src/connectors/mqtt/index.js';
import { once as onceEvent, waitFor, withTimeout } from '../../fixtures/wait.js';

const VERSIONS = [4, 5] as const;
type Version = (typeof VERSIONS)[number];

const ALL: Target = { all: true, clientIds: [], tags: [] };
const to = (...ids: string[]): Target => ({ all: false, clientIds: ids.map(asClientId), tags: [] });

/** The Receive Maximum the server announces in these tests. */
const RECEIVE_MAXIMUM = 2;

describe('MQTT by the letter of the spec', () => {
  let storage: Storage;
  let hub: Hub;
  let connector: MqttConnector;
  let port: number;
  let app: App;
  const clients: MqttClient[] = [];
  const sockets: Socket[] = [];

  beforeEach(async () => {
    storage = openSqliteStorage(':memory:');
    hub = new Hub({ storage, bus: new LocalBus(), logger: createLogger('silent'), maxBufferedBytes: 256 * 1024 });
    app = await storage.apps.createApp({ name: 'mqtt-spec' });
    connector = new MqttConnector({
      hub,
      log: createLogger('silent'),
      host: '127.0.0.1',
      port: 0,
      maxPacketBytes: 64 * 1024,
      connectTimeoutMs: 2000,
      receiveMaximum: RECEIVE_MAXIMUM,
    });
    port = await connector.listen();
  });

  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.endAsync(true)));
    for (const s of sockets.splice(0)) s.destroy();
    await connector.close();
    await hub.close();
    await storage.close();
  });

  /** An mqtt.js client, connected, collecting the ids of what it receives. */
  async function client(version: Version, clientId: string, opts: IClientOptions = {}): Promise<{ c: MqttClient; ids: number[]; connack: IConnackPacket }> {
    const c = mqttConnect(`mqtt://127.0.0.1:${port}`, { protocolVersion: version, clientId, username: app.apikey, reconnectPeriod: 0, connectTimeout: 3000, ...opts });
    clients.push(c);
    const ids: number[] = [];
    c.on('message', (_topic, payload) => ids.push((JSON.parse(payload.toString('utf8')) as { id: number }).id));
    const [connack] = (await once(c, 'connect', 3000)) as [IConnackPacket];
    return { c, ids, connack };
  }

  const offline = (clientId: string): Promise<void> =>
    waitFor(() => !hub.onlineClients(app.apikey).some((c) => c.clientId === clientId), { timeoutMs: 3000, message: `${clientId} offline` });
  const online = (clientId: string): Promise<void> =>
    waitFor(() => hub.onlineClients(app.apikey).some((c) => c.clientId === clientId), { timeoutMs: 3000, message: `${clientId} online` });
  const push = async (target: Target, data: string): Promise<number> => (await hub.publish({ apikey: app.apikey, target, event: 'onMsg', data })).message.id;

  /** A persistent connect: clean session 0 (3.1.1); clean start 0 with a session that outlives the connection (5). */
  const persistent = (version: Version): IClientOptions => ({ clean: false, ...(version === 5 ? { properties: { sessionExpiryInterval: 3600 } } : {}) });

  for (const version of VERSIONS) {
    const v = version === 4 ? '3.1.1' : '5';
    describe(`MQTT ${v}`, () => {
      it(`a clean ${version === 4 ? 'session' : 'start'} discards the stored session: what was queued before it never comes (${version === 4 ? 'MQTT-3.1.2-6' : 'MQTT-3.1.2-4'})`, async () => {
        // A persistent session, then messages queued while it is away: they arrive on its return.
        const first = await client(version, 'dev', persistent(version));
        // MQTT-3.2.2-3: no session was stored for this client id yet.
        assert.equal(first.connack.sessionPresent, false);
        await first.c.endAsync();
        await offline('dev');
        const queued1 = await push(to('dev'), 'queued 1');
        const second = await client(version, 'dev', persistent(version));
        // MQTT-3.2.2-2 (3.1.1) / MQTT-3.2.2-3 (5): the session was stored.
        assert.equal(second.connack.sessionPresent, true);
        await waitFor(() => second.ids.length === 1, { timeoutMs: 3000, message: 'the queued message' });
        assert.deepEqual(second.ids, [queued1]);
        await second.c.endAsync();
        await offline('dev');

        // Queued again; then a clean connect: it starts from now, without them. It gets
        // nothing (and so acks nothing past them): only the discarded session stands
        // between them and the next persistent connect.
        const queued2 = await push(to('dev'), 'queued 2');
        const queued3 = await push(ALL, 'queued 3');
        const clean = await client(version, 'dev', { clean: true });
        // MQTT-3.2.2-1 (3.1.1) / MQTT-3.2.2-2 (5).
        assert.equal(clean.connack.sessionPresent, false);
        // A replay would be written right after CONNACK, before this SUBACK.
        await clean.c.subscribeAsync(`apps/${app.apikey}/clients/dev`, { qos: 1 });
        assert.deepEqual(clean.ids, []);
        await clean.c.endAsync();
        await offline('dev');
        // The discarded position is in the store, not only in this node's memory.
        await hub.flush();

        // The persistent connect again: what was queued before the clean one is gone.
        const third = await client(version, 'dev', persistent(version));
        const live = await push(to('dev'), 'live');
        await waitFor(() => third.ids.length >= 1, { timeoutMs: 3000, message: 'the live message' });
        // Delivery is in id order, a replay first: had queued 2 / 3 been kept, they would come first.
        assert.deepEqual(third.ids, [live]);
        assert.ok(queued2 < live && queued3 < live);
      });

      it('a client never seen, connecting with clean session 0, is told no session is present (MQTT-3.2.2-3)', async () => {
        const first = await client(version, 'newcomer', persistent(version));
        assert.equal(first.connack.sessionPresent, false);
        await first.c.endAsync();
        await offline('newcomer');
        const again = await client(version, 'newcomer', persistent(version));
        assert.equal(again.connack.sessionPresent, true);
        // A manager has no session to resume.
        const manager = await client(version, 'backend', { ...persistent(version), password: app.secret });
        assert.equal(manager.connack.sessionPresent, false);
      });

      it('a clean session with mosquitto_sub discards what a persistent one had queued (MQTT-3.1.2-6)', async () => {
        const cli = version === 5 ? '5' : 'mqttv311';
        const topic = `apps/${app.apikey}/clients/mosq`;
        const sub = (clean: boolean): Promise<{ code: number | null; stdout: string; stderr: string }> =>
          run('mosquitto_sub', ['-h', '127.0.0.1', '-p', String(port), '-u', app.apikey, '-i', 'mosq', '-t', topic, '-q', '1', '-C', '1', '-W', '5', '-V', cli, ...(clean ? [] : ['-c'])]);
        const idOf = (out: { code: number | null; stdout: string; stderr: string }): number => {
          assert.equal(out.code, 0, out.stderr);
          return (JSON.parse(out.stdout) as { id: number }).id;
        };
        // A persistent session, then a message queued while it is away: the next persistent session gets it.
        let running = sub(false);
        await online('mosq');
        const first = await push(to('mosq'), 'first');
        assert.equal(idOf(await running), first);
        await offline('mosq');
        const queued = await push(to('mosq'), 'queued');
        assert.equal(idOf(await sub(false)), queued);
        await offline('mosq');
        // Queued again; a clean session that gets nothing (it leaves once subscribed, -E);
        // then the persistent one must not get what was queued.
        await push(to('mosq'), 'discarded');
        const clean = await run('mosquitto_sub', ['-h', '127.0.0.1', '-p', String(port), '-u', app.apikey, '-i', 'mosq', '-t', topic, '-q', '1', '-E', '-V', cli]);
        assert.equal(clean.code, 0, clean.stderr);
        assert.equal(clean.stdout, '');
        await offline('mosq');
        running = sub(false);
        await online('mosq');
        const live = await push(to('mosq'), 'live');
        assert.equal(idOf(await running), live);
      });

      it('refuses a client id that is not well-formed UTF-8 or holds U+0000 with CONNACK identifier rejected, then closes (MQTT-1.5.3-1/-2, MQTT-3.1.3-9)', async () => {
        const bad: readonly (readonly number[])[] = [
          [0xff, 0x61], // not UTF-8 at all
          [0xed, 0xa0, 0x80], // an encoded surrogate, U+D800 (MQTT-1.5.3-1 names them)
          [0xc0, 0x80], // an overlong U+0000
          [0x61, 0x00, 0x62], // U+0000 (MQTT-1.5.3-2)
        ];
        for (const id of bad) {
          const peer = await rawPeer(port, sockets, version);
          peer.socket.write(withString(connectBytes(version, 'XYZ', app.apikey), 'XYZ', Buffer.from(id)));
          await withTimeout(peer.closed, 3000, 'the close');
          // 3.1.1: CONNACK 20 02 00 02. MQTT 5: CONNACK 0x85 Client Identifier not valid (with a reason string).
          if (version === 4) assert.deepEqual([...peer.bytes()], [0x20, 0x02, 0x00, 0x02]);
          else assert.deepEqual([...peer.bytes().subarray(0, 4)].filter((_, i) => i !== 1), [0x20, 0x00, 0x85]);
        }
        assert.equal(hub.connectionCount, 0);
      });

      it('closes on a CONNECT whose username is not well-formed UTF-8 (MQTT 5: CONNACK 0x81 Malformed Packet)', async () => {
        const peer = await rawPeer(port, sockets, version);
        peer.socket.write(withString(connectBytes(version, 'named', 'USERNAME'), 'USERNAME', Buffer.from([0x61, 0xff])));
        await withTimeout(peer.closed, 3000, 'the close');
        if (version === 4) assert.deepEqual([...peer.bytes()], []);
        else assert.deepEqual([...peer.bytes().subarray(0, 4)].filter((_, i) => i !== 1), [0x20, 0x00, 0x81]);
      });

      it('closes on a topic filter holding U+0000 or ill-formed UTF-8 (MQTT 5: DISCONNECT 0x81); U+FFFD itself is a character like any other', async () => {
        for (const bad of [Buffer.from([0x00]), Buffer.from([0xfe])]) {
          const peer = await connected(version, 'filters');
          const filter = `apps/${app.apikey}/tags/ab`;
          const subscribe = Buffer.from(generate({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: filter, qos: 1 }] }, { protocolVersion: version }));
          peer.socket.write(withString(subscribe, filter, Buffer.concat([Buffer.from(`apps/${app.apikey}/tags/a`), bad, Buffer.from('b')])));
          await withTimeout(peer.closed, 3000, 'the close');
          // No SUBACK: 3.1.1 closes (MQTT-1.5.3-1/-2); MQTT 5 sends DISCONNECT 0x81 first.
          if (version === 4) assert.deepEqual([...peer.bytes()], []);
          else assert.deepEqual([peer.bytes()[0], peer.bytes()[2]], [0xe0, 0x81]);
        }
        // A well-formed U+FFFD (EF BF BD) is a valid character: granted.
        const peer = await connected(version, 'replacement');
        peer.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: `apps/${app.apikey}/tags/\uFFFD`, qos: 1 }] });
        const suback = await peer.next('suback');
        assert.deepEqual(suback.granted, [1]);
      });

      it("closes on a manager's PUBLISH whose topic is not well-formed UTF-8, and stores nothing", async () => {
        const peer = await connected(version, 'backend', app.secret);
        const topic = `apps/${app.apikey}/push`;
        const publish = generate({ cmd: 'publish', topic, payload: Buffer.from('{"data":1}'), qos: 0, retain: false, dup: false }, { protocolVersion: version });
        peer.socket.write(withString(Buffer.from(publish), topic, Buffer.concat([Buffer.from(`apps/${app.apikey}/pus`), Buffer.from([0xe8])])));
        await withTimeout(peer.closed, 3000, 'the close');
        if (version === 4) assert.deepEqual([...peer.bytes()], []);
        else assert.deepEqual([peer.bytes()[0], peer.bytes()[2]], [0xe0, 0x81]);
        assert.deepEqual(await storage.messages.history(app.apikey, { limit: 10 }), []);
      });

      it('closes on a PINGREQ with a non-zero remaining length (c0 01 00) or a reserved flag set (c2 00), and answers c0 00 with d0 00', async () => {
        const good = await connected(version, 'pinger');
        good.socket.write(Buffer.from([0xc0, 0x00]));
        await waitFor(() => good.bytes().length === 2, { timeoutMs: 3000, message: 'the PINGRESP' });
        assert.deepEqual([...good.bytes()], [0xd0, 0x00]);

        // A body, or a reserved flag bit set (MQTT-2.2.2-1/-2): malformed.
        for (const bad of [[0xc0, 0x01, 0x00], [0xc2, 0x00]]) {
          const peer = await connected(version, 'bad-pinger');
          peer.socket.write(Buffer.from(bad));
          await withTimeout(peer.closed, 3000, 'the close');
          // No PINGRESP. 3.1.1: closed (MQTT-4.8.0-1); MQTT 5: DISCONNECT 0x81 Malformed Packet first.
          if (version === 4) assert.deepEqual([...peer.bytes()], []);
          else assert.deepEqual([peer.bytes()[0], peer.bytes()[2]], [0xe0, 0x81]);
        }
        assert.equal(good.socket.destroyed, false);
      });
    });
  }

  describe('Receive Maximum (MQTT 5 §3.3.4)', () => {
    const pushTopic = (): string => `apps/${app.apikey}/push`;
    const publishBytes = (messageId: number, qos: 1 | 2): Buffer =>
      Buffer.from(generate({ cmd: 'publish', topic: pushTopic(), payload: Buffer.from(JSON.stringify({ data: messageId })), qos, messageId, retain: false, dup: false }, { protocolVersion: 5 }));

    it('announces its Receive Maximum in CONNACK and closes a client that exceeds it with DISCONNECT 0x93 (MQTT-3.3.4-7)', async () => {
      const peer = await rawPeer(port, sockets, 5);
      peer.socket.write(connectBytes(5, 'pusher', app.apikey, app.secret));
      const connack = await peer.next('connack');
      assert.equal(connack.properties?.receiveMaximum, RECEIVE_MAXIMUM);
      // Three QoS 1 PUBLISHes, none answered yet (one write: the server reads all three at once).
      const sent = peer.bytes().length;
      peer.socket.write(Buffer.concat([publishBytes(1, 1), publishBytes(2, 1), publishBytes(3, 1)]));
      await withTimeout(peer.closed, 3000, 'the close');
      const after = peer.bytes().subarray(sent);
      // e0 <length> 93 <properties: the reason string>: DISCONNECT 0x93 Receive Maximum exceeded, nothing else.
      assert.equal(after[0], 0xe0);
      assert.equal(after[2], 0x93);
      assert.equal(after.length, 2 + after[1]!);
      assert.equal(peer.packets.filter((p) => p.cmd === 'puback').length, 0);
    });

    it('counts a QoS 2 PUBLISH until its PUBCOMP, and takes more once answered', async () => {
      const peer = await rawPeer(port, sockets, 5);
      peer.socket.write(connectBytes(5, 'pusher2', app.apikey, app.secret));
      await peer.next('connack');
      // Two QoS 1 at the limit: both answered; then two more, answered too.
      peer.socket.write(Buffer.concat([publishBytes(1, 1), publishBytes(2, 1)]));
      await waitFor(() => peer.packets.filter((p) => p.cmd === 'puback').length === 2, { timeoutMs: 3000, message: 'two PUBACKs' });
      peer.socket.write(Buffer.concat([publishBytes(3, 1), publishBytes(4, 1)]));
      await waitFor(() => peer.packets.filter((p) => p.cmd === 'puback').length === 4, { timeoutMs: 3000, message: 'four PUBACKs' });
      // Two QoS 2, PUBRECed but not released: both still count.
      peer.socket.write(Buffer.concat([publishBytes(5, 2), publishBytes(6, 2)]));
      await waitFor(() => peer.packets.filter((p) => p.cmd === 'pubrec').length === 2, { timeoutMs: 3000, message: 'two PUBRECs' });
      // One released: PUBCOMP, and room for one more.
      peer.send({ cmd: 'pubrel', messageId: 5 });
      await peer.next('pubcomp');
      peer.socket.write(publishBytes(7, 1));
      await waitFor(() => peer.packets.filter((p) => p.cmd === 'puback').length === 5, { timeoutMs: 3000, message: 'the fifth PUBACK' });
      // The limit again: 6 is unreleased, 8 fills the window, 9 is one too many.
      peer.socket.write(Buffer.concat([publishBytes(8, 2), publishBytes(9, 1)]));
      await withTimeout(peer.closed, 3000, 'the close');
      assert.equal(peer.packets.find((p): p is IDisconnectPacket => p.cmd === 'disconnect')?.reasonCode, 0x93);
      // 1–8 were taken (8 was being stored when 9 came; it got no PUBREC, so the client
      // sends it again: at least once); 9 was not.
      const stored = await storage.messages.history(app.apikey, { limit: 20 });
      assert.deepEqual(stored.map((m) => m.data).reverse(), [1, 2, 3, 4, 5, 6, 7, 8]);
    });

    it('MQTT 3.1.1 has no Receive Maximum: three unanswered QoS 1 pushes are all taken', async () => {
      const peer = await rawPeer(port, sockets, 4);
      peer.socket.write(connectBytes(4, 'pusher3', app.apikey, app.secret));
      await peer.next('connack');
      const bytes = [1, 2, 3].map((id) => Buffer.from(generate({ cmd: 'publish', topic: pushTopic(), payload: Buffer.from('{"data":1}'), qos: 1, messageId: id, retain: false, dup: false })));
      peer.socket.write(Buffer.concat(bytes));
      await waitFor(() => peer.packets.filter((p) => p.cmd === 'puback').length === 3, { timeoutMs: 3000, message: 'three PUBACKs' });
    });

    it('a Receive Maximum of 0 in CONNECT is a protocol error: closed, not accepted', async () => {
      const peer = await rawPeer(port, sockets, 5);
      peer.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clean: true, clientId: 'zero', keepalive: 0, username: app.apikey, properties: { receiveMaximum: 0 } });
      await withTimeout(peer.closed, 3000, 'the close');
      assert.equal(peer.packets.filter((p) => p.cmd === 'connack').length, 0);
      assert.equal(hub.onlineClients(app.apikey).length, 0);
    });

    it("sends a client no more unacknowledged QoS 1 PUBLISHes than the Receive Maximum it announced (MQTT-3.3.4-9)", async () => {
      const peer = await rawPeer(port, sockets, 5);
      peer.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clean: true, clientId: 'narrow', keepalive: 0, username: app.apikey, properties: { receiveMaximum: 2 } });
      await peer.next('connack');
      const ids: number[] = [];
      for (let i = 0; i < 5; i++) ids.push(await push(ALL, `m${i}`));
      const publishes = (): Extract<Packet, { cmd: 'publish' }>[] => peer.packets.filter((p): p is Extract<Packet, { cmd: 'publish' }> => p.cmd === 'publish');
      await waitFor(() => publishes().length === 2, { timeoutMs: 3000, message: 'two PUBLISHes' });
      // Nothing more comes while both are unacknowledged: a PINGREQ round trip orders it.
      peer.send({ cmd: 'pingreq' });
      await peer.next('pingresp');
      assert.equal(publishes().length, 2);
      // Each PUBACK lets one more out.
      peer.send({ cmd: 'puback', messageId: publishes()[0]!.messageId! });
      await waitFor(() => publishes().length === 3, { timeoutMs: 3000, message: 'the third PUBLISH' });
      peer.send({ cmd: 'pingreq' });
      await peer.next('pingresp');
      assert.equal(publishes().length, 3);
      assert.deepEqual(
        publishes().map((p) => (JSON.parse(p.payload.toString()) as { id: number }).id),
        ids.slice(0, 3),
      );
    });
  });

  /** A raw peer past CONNECT/CONNACK, with what it has received since cleared. */
  async function connected(version: Version, clientId: string, password?: string): Promise<RawPeer> {
    const peer = await rawPeer(port, sockets, version);
    peer.socket.write(connectBytes(version, clientId, app.apikey, password));
    await peer.next('connack');
    peer.clear();
    return peer;
  }
});

/** A CONNECT's bytes, clean session, no keep-alive. */
function connectBytes(version: Version, clientId: string, username: string, password?: string): Buffer {
  return Buffer.from(
    generate(
      { cmd: 'connect', protocolId: 'MQTT', protocolVersion: version, clean: true, clientId, keepalive: 0, username, ...(password !== undefined ? { password: Buffer.from(password) } : {}) },
      { protocolVersion: version },
    ),
  );
}

/**
 * The packet with one of its strings, `text` (found by its length prefix and content,
 * once), replaced by `bytes`: the string's length and the one-byte remaining length are
 * fixed up, so only the string's content is bad.
 */
function withString(packet: Buffer, text: string, bytes: Buffer): Buffer {
  const content = Buffer.from(text);
  const prefixed = Buffer.concat([Buffer.from([content.length >> 8, content.length & 0xff]), content]);
  const at = packet.indexOf(prefixed);
  assert.ok(at > 0 && packet.indexOf(prefixed, at + 1) === -1, `the string ${text} once in the packet`);
  const length = Buffer.from([bytes.length >> 8, bytes.length & 0xff]);
  const out = Buffer.concat([packet.subarray(0, at), length, bytes, packet.subarray(at + prefixed.length)]);
  assert.ok(packet[1]! < 0x80 && out.length - 2 < 0x80, 'a one-byte remaining length');
  out[1] = out.length - 2;
  return out;
}

interface RawPeer {
  readonly socket: Socket;
  readonly packets: Packet[];
  readonly closed: Promise<void>;
  /** Every byte received (since `clear`). */
  bytes(): Buffer;
  clear(): void;
  send(packet: Packet): void;
  next<C extends Packet['cmd']>(cmd: C): Promise<Extract<Packet, { cmd: C }>>;
}

async function rawPeer(port: number, sockets: Socket[], version: Version): Promise<RawPeer> {
  const socket = netConnect(port, '127.0.0.1');
  sockets.push(socket);
  await once(socket, 'connect', 3000);
  const packets: Packet[] = [];
  let received: Buffer[] = [];
  const parse = mqttParser({ protocolVersion: version });
  parse.on('packet', (p: Packet) => packets.push(p));
  parse.on('error', () => undefined);
  socket.on('data', (chunk: Buffer) => {
    received.push(chunk);
    parse.parse(chunk);
  });
  socket.on('error', () => undefined);
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  return {
    socket,
    packets,
    closed,
    bytes: () => Buffer.concat(received),
    clear() {
      received = [];
      packets.length = 0;
    },
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

function once(emitter: MqttClient | EventEmitter, event: string, timeoutMs: number): Promise<unknown[]> {
  return onceEvent(emitter as EventEmitter, event, timeoutMs);
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
  return withTimeout(done, 8000, cmd).finally(() => child.kill());
}
