/**
 * Lean protocol clients for the load generator: raw `net` sockets with just enough of
 * each protocol to enter, stay alive and receive pushes. No per-message objects: a
 * push is found in the bytes it arrived in and handed to the sink as (buffer, start,
 * end). Pomelo framing comes from our codec (src/protocol/pomelo); WebSocket, engine.io
 * and MQTT are written by hand, as far as a client needs them.
 */
import { connect, type Socket } from 'node:net';
import { randomBytes } from 'node:crypto';
import { encodePackage, encodeRequest, HANDSHAKE_ACK_PACKAGE, HEARTBEAT_PACKAGE, PackageType } from '../../src/protocol/pomelo/index.js';
import { monoUs } from './histogram.js';
import { mqttPacketLength, pomeloPackageLength, Splitter, wsFrameLength } from './splitter.js';

export const CONNECTORS = ['hybrid-tcp', 'hybrid-ws', 'sio', 'sio-pomelo', 'mqtt', 'ws', 'ntfy', 'tcp'] as const;
export type ConnectorKind = (typeof CONNECTORS)[number];

/** Where and how the clients of one run connect; the same for every worker. */
export interface ClientConfig {
  readonly kind: ConnectorKind;
  readonly host: string;
  readonly port: number;
  /** WebSocket request path (hybrid-ws, ws, sio); ntfy: the stream's path (`/<topic>/json`). */
  readonly path: string;
  readonly apikey: string;
  /** Pomelo route of the enter request (hybrid, sio-pomelo). */
  readonly enterRoute: string;
  /** MQTT: topic to subscribe to, with `qos`; username (empty: none). */
  readonly mqttTopic: string;
  readonly mqttUsername: string;
  readonly qos: 0 | 1;
  /** Client ids are `${clientIdPrefix}${globalIndex}`. */
  readonly clientIdPrefix: string;
  /** Source addresses, connection g binds `srcAddrs[g % srcAddrs.length]`. */
  readonly srcAddrs: readonly string[];
  /**
   * Source ports: connection g binds port `portLow + (portOffset + ⌊g / srcAddrs.length⌋) mod
   * portCount`. Explicit ports make bind() a hash lookup; with port 0 the kernel searches
   * for a free one, which grows with every socket bound to the address (measured: ~2 ms
   * per connect at 5,000 sockets, the whole connect phase).
   */
  readonly portLow: number;
  readonly portCount: number;
  readonly portOffset: number;
}

/** Source ports below the ephemeral range (1024–32767 on Linux), clear of what the OS hands out. */
export const SOURCE_PORT_LOW = 10_000;
export const SOURCE_PORT_COUNT = 22_000;

/** What a client reports to its worker. */
export interface Sink {
  readonly cfg: ClientConfig;
  entered(i: number): void;
  failed(i: number, why: string): void;
  /** The socket closed after the client entered (server kick, reset, …). */
  dropped(i: number, why: string): void;
  /** A pushed message's bytes; `now` is monoUs() taken once for the chunk. */
  message(i: number, buf: Buffer, start: number, end: number, now: number): void;
  /** Pomelo heartbeat interval from a handshake reply, seconds. */
  heartbeatSeconds(seconds: number): void;
}

const MQTT_KEEPALIVE_S = 120;

/**
 * Every socket of a worker reads into this buffer; what a read leaves unfinished (a
 * frame cut in two) is copied out by the Splitter, so nothing keeps a view of it.
 */
const READ_BUFFER = Buffer.allocUnsafe(256 * 1024);

export abstract class Client {
  protected socket: Socket | undefined;
  /** 0 connecting, 1 entered, 2 closed. */
  protected state = 0;
  /** The clock for the chunk being handled, read at most once per chunk (0: not yet). */
  #chunkUs = 0;

  constructor(
    protected readonly sink: Sink,
    /** Index within the worker. */
    readonly i: number,
    /** Index across all workers (names and source address). */
    readonly g: number,
  ) {}

  #attempt = 0;
  readonly #onRead = (n: number): boolean => {
    this.#chunkUs = 0;
    this.onData(READ_BUFFER.subarray(0, n));
    return true;
  };

  start(): void {
    const cfg = this.sink.cfg;
    const n = cfg.srcAddrs.length;
    // A retry (the port was taken) moves a full lap of connections further along.
    const slot = cfg.portOffset + Math.floor(this.g / n) + this.#attempt * 7919;
    const socket = connect({
      host: cfg.host,
      port: cfg.port,
      localAddress: cfg.srcAddrs[this.g % n]!,
      localPort: cfg.portLow + (slot % cfg.portCount),
      // Reads land in one buffer shared by every socket of the worker and are handled
      // at once: no Buffer and no stream machinery per read (half the client's CPU).
      onread: { buffer: READ_BUFFER, callback: this.#onRead },
    });
    this.socket = socket;
    socket.setNoDelay(true);
    socket.on('connect', () => this.onConnect());
    socket.on('error', (err: NodeJS.ErrnoException) => {
      if ((err.code === 'EADDRINUSE' || err.code === 'EADDRNOTAVAIL') && this.state === 0 && this.#attempt < 5) {
        // Someone holds that source port (a listener on 0.0.0.0, a TIME_WAIT): take another.
        this.#attempt++;
        socket.removeAllListeners();
        socket.on('error', () => undefined);
        socket.destroy();
        this.start();
        return;
      }
      this.onClose(err.code ?? err.message);
    });
    socket.on('close', () => this.onClose('closed by peer'));
  }

  get entered(): boolean {
    return this.state === 1;
  }

  /** monoUs() when the current chunk arrived: every message in it got there at once. */
  now(): number {
    if (this.#chunkUs === 0) this.#chunkUs = monoUs();
    return this.#chunkUs;
  }

  /** Sends whatever keeps the connection alive; called about once per heartbeat period. */
  heartbeat(): void {}

  close(): void {
    if (this.state === 2) return;
    this.state = 2;
    this.socket?.destroy();
  }

  protected write(buf: Buffer | string): void {
    const s = this.socket;
    if (s !== undefined && !s.destroyed) s.write(buf);
  }

  protected enter(): void {
    if (this.state !== 0) return;
    this.state = 1;
    this.sink.entered(this.i);
  }

  protected fail(why: string): void {
    if (this.state === 2) return;
    const was = this.state;
    this.state = 2;
    this.socket?.destroy();
    if (was === 1) this.sink.dropped(this.i, why);
    else this.sink.failed(this.i, why);
  }

  protected onClose(why: string): void {
    this.fail(why);
  }

  protected abstract onConnect(): void;
  protected abstract onData(chunk: Buffer): void;
}

// ---------------------------------------------------------------- Pomelo hybrid

/** The handshake body a Pomelo JS client sends; `dictVersion` once the worker has seen one. */
function pomeloHandshake(dictVersion: string | undefined): Buffer {
  const sys: Record<string, unknown> = { type: 'shaddock-bench', version: '0.1.0', rsa: {} };
  if (dictVersion !== undefined) sys['dictVersion'] = dictVersion;
  return encodePackage(PackageType.HANDSHAKE, Buffer.from(JSON.stringify({ sys, user: {} })));
}

let handshakeBytes = pomeloHandshake(undefined);
let dictVersionSeen = false;
const CODE_200 = Buffer.from('"code":200');

/** What the Pomelo logic needs from its transport (TCP or WebSocket). */
interface PomeloHost {
  readonly i: number;
  readonly g: number;
  readonly entered: boolean;
  now(): number;
  sendPackage(pkg: Buffer): void;
  enterNow(): void;
  failNow(why: string): void;
}

/** Handles one Pomelo package (docs/pomelo-protocol.md §4–§7) from `buf[start, end)`. */
function onPomeloPackage(host: PomeloHost, sink: Sink, buf: Buffer, start: number, end: number): void {
  const type = buf[start]!;
  if (type === PackageType.DATA) {
    const msgType = (buf[start + 4]! >> 1) & 7;
    if (msgType === 3) {
      sink.message(host.i, buf, start + 5, end, host.now());
    } else if (msgType === 2 && !host.entered) {
      const body = buf.subarray(start + 4, end);
      if (body.indexOf(CODE_200) >= 0) host.enterNow();
      else host.failNow(`enter refused: ${body.subarray(0, 200).toString('utf8')}`);
    }
    return;
  }
  if (type === PackageType.HANDSHAKE) {
    onPomeloHandshake(host, sink, buf.subarray(start + 4, end));
    return;
  }
  if (type === PackageType.KICK) host.failNow(`kicked: ${buf.subarray(start + 4, end).toString('utf8')}`);
  // HEARTBEAT replies need nothing.
}

function onPomeloHandshake(host: PomeloHost, sink: Sink, body: Buffer): void {
  let reply: unknown;
  try {
    reply = JSON.parse(body.toString('utf8'));
  } catch {
    host.failNow('handshake reply is not JSON');
    return;
  }
  const r = reply as { code?: unknown; sys?: { heartbeat?: unknown; dictVersion?: unknown } };
  if (r.code !== 200) {
    host.failNow(`handshake refused: ${body.toString('utf8').slice(0, 200)}`);
    return;
  }
  const hb = r.sys?.heartbeat;
  if (typeof hb === 'number') sink.heartbeatSeconds(hb);
  const dv = r.sys?.dictVersion;
  if (!dictVersionSeen && typeof dv === 'string') {
    // Like the JS client's cached dictionary: later handshakes skip it.
    dictVersionSeen = true;
    handshakeBytes = pomeloHandshake(dv);
  }
  const cfg = sink.cfg;
  const enterBody = JSON.stringify({ apikey: cfg.apikey, apiKey: cfg.apikey, clientId: cfg.clientIdPrefix + host.g, role: 'client' });
  const enter = encodePackage(PackageType.DATA, encodeRequest(1, cfg.enterRoute, Buffer.from(enterBody)));
  // Two packages, two sends: a WebSocket message holds exactly one (docs/pomelo-protocol.md §2.3).
  host.sendPackage(HANDSHAKE_ACK_PACKAGE);
  host.sendPackage(enter);
}

export class HybridTcpClient extends Client implements PomeloHost {
  readonly #splitter = new Splitter(pomeloPackageLength);
  readonly #onFrame = (buf: Buffer, start: number, end: number): void => onPomeloPackage(this, this.sink, buf, start, end);

  protected onConnect(): void {
    this.write(handshakeBytes);
  }

  protected onData(chunk: Buffer): void {
    try {
      this.#splitter.push(chunk, this.#onFrame);
    } catch (err) {
      this.fail((err as Error).message);
    }
  }

  override heartbeat(): void {
    if (this.state === 1) this.write(HEARTBEAT_PACKAGE);
  }

  sendPackage(pkg: Buffer): void {
    this.write(pkg);
  }

  enterNow(): void {
    this.enter();
  }

  failNow(why: string): void {
    this.fail(why);
  }
}

// ---------------------------------------------------------------- WebSocket (RFC 6455)

const WS_KEY = 'dGhlIHNhbXBsZSBub25jZQ=='; // RFC 6455 §1.3's sample nonce: the server does not care
const MASK = randomBytes(4);
const HEAD_END = Buffer.from('\r\n\r\n');
const OP_TEXT = 1;
const OP_BINARY = 2;
const OP_CLOSE = 8;
const OP_PING = 9;

/** A masked client frame (RFC 6455 §5.3) in one buffer. */
export function wsFrame(opcode: number, payload: Buffer): Buffer {
  const n = payload.length;
  const head = n < 126 ? 2 : n < 65536 ? 4 : 10;
  const out = Buffer.allocUnsafe(head + 4 + n);
  out[0] = 0x80 | opcode;
  if (n < 126) {
    out[1] = 0x80 | n;
  } else if (n < 65536) {
    out[1] = 0x80 | 126;
    out.writeUInt16BE(n, 2);
  } else {
    out[1] = 0x80 | 127;
    out.writeUInt32BE(0, 2);
    out.writeUInt32BE(n, 6);
  }
  MASK.copy(out, head);
  const m0 = MASK[0]!;
  const m1 = MASK[1]!;
  const m2 = MASK[2]!;
  const m3 = MASK[3]!;
  const base = head + 4;
  for (let k = 0; k < n; k++) {
    const m = (k & 3) === 0 ? m0 : (k & 3) === 1 ? m1 : (k & 3) === 2 ? m2 : m3;
    out[base + k] = payload[k]! ^ m;
  }
  return out;
}

/** Raw WebSocket transport: upgrade, frame splitting, ping/close handling. */
abstract class WsClient extends Client {
  #upgraded = false;
  #head: Buffer | undefined;
  readonly #splitter = new Splitter(wsFrameLength);
  #fragments: Buffer[] | undefined;
  #fragOpcode = 0;
  readonly #onFrame = (buf: Buffer, start: number, end: number): void => this.#frame(buf, start, end);

  protected onConnect(): void {
    const cfg = this.sink.cfg;
    this.write(
      `GET ${cfg.path} HTTP/1.1\r\nHost: ${cfg.host}:${cfg.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Key: ${WS_KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
    );
  }

  protected onData(chunk: Buffer): void {
    if (!this.#upgraded) {
      const head = this.#head === undefined ? chunk : Buffer.concat([this.#head, chunk]);
      const at = head.indexOf(HEAD_END);
      if (at < 0) {
        if (head.length > 16384) this.fail('WebSocket upgrade response too long');
        else this.#head = Buffer.from(head); // the read buffer is reused
        return;
      }
      this.#head = undefined;
      const status = head.subarray(0, Math.min(at, 64)).toString('latin1');
      if (!/^HTTP\/1\.1 101/.test(status)) {
        this.fail(`WebSocket upgrade refused: ${status.split('\r\n')[0] ?? ''}`);
        return;
      }
      this.#upgraded = true;
      this.onOpen();
      chunk = head.subarray(at + 4);
      if (chunk.length === 0) return;
    }
    try {
      this.#splitter.push(chunk, this.#onFrame);
    } catch (err) {
      this.fail((err as Error).message);
    }
  }

  #frame(buf: Buffer, start: number, end: number): void {
    const b0 = buf[start]!;
    const b1 = buf[start + 1]!;
    const len7 = b1 & 0x7f;
    let off = start + (len7 < 126 ? 2 : len7 === 126 ? 4 : 10);
    if ((b1 & 0x80) !== 0) off += 4; // servers never mask (§5.1); skip a key anyway
    const opcode = b0 & 0x0f;
    const fin = (b0 & 0x80) !== 0;
    if (opcode === OP_TEXT || opcode === OP_BINARY) {
      if (fin) this.onWsMessage(buf, off, end);
      else {
        this.#fragments = [Buffer.from(buf.subarray(off, end))];
        this.#fragOpcode = opcode;
      }
    } else if (opcode === 0 && this.#fragments !== undefined) {
      this.#fragments.push(Buffer.from(buf.subarray(off, end)));
      if (fin) {
        const whole = Buffer.concat(this.#fragments);
        this.#fragments = undefined;
        if (this.#fragOpcode !== 0) this.onWsMessage(whole, 0, whole.length);
      }
    } else if (opcode === OP_PING) {
      this.write(wsFrame(0x0a, buf.subarray(off, end)));
    } else if (opcode === OP_CLOSE) {
      const code = end - off >= 2 ? buf.readUInt16BE(off) : 1005;
      const reason = buf.subarray(Math.min(off + 2, end), end).toString('utf8');
      this.write(wsFrame(OP_CLOSE, buf.subarray(off, Math.min(off + 2, end))));
      this.fail(`WebSocket close ${code}${reason ? ` ${reason}` : ''}`);
    }
  }

  protected sendWs(opcode: number, payload: Buffer): void {
    this.write(wsFrame(opcode, payload));
  }

  protected abstract onOpen(): void;
  protected abstract onWsMessage(buf: Buffer, start: number, end: number): void;
}

/** Pomelo hybrid over WebSocket: one package per binary message (docs/pomelo-protocol.md §2.3). */
export class HybridWsClient extends WsClient implements PomeloHost {
  protected onOpen(): void {
    this.sendWs(OP_BINARY, handshakeBytes);
  }

  protected onWsMessage(buf: Buffer, start: number, end: number): void {
    // A message normally holds one package; a batching server may put several.
    let off = start;
    while (end - off >= 4 && this.state !== 2) {
      const total = pomeloPackageLength(buf, off, end);
      if (off + total > end) break;
      onPomeloPackage(this, this.sink, buf, off, off + total);
      off += total;
    }
  }

  override heartbeat(): void {
    if (this.state === 1) this.sendWs(OP_BINARY, HEARTBEAT_PACKAGE);
  }

  sendPackage(pkg: Buffer): void {
    this.sendWs(OP_BINARY, pkg);
  }

  enterNow(): void {
    this.enter();
  }

  failNow(why: string): void {
    this.fail(why);
  }
}

/** Shaddock's plain WebSocket JSON API (docs/connectors-ws-sse.md) and the bare ws peer. */
export class JsonWsClient extends WsClient {
  static readonly #ENTERED = Buffer.from('"type":"entered"');
  static readonly #MESSAGE = Buffer.from('"type":"message"');

  protected onOpen(): void {
    const cfg = this.sink.cfg;
    this.sendWs(OP_TEXT, Buffer.from(JSON.stringify({ type: 'enter', apikey: cfg.apikey, clientId: cfg.clientIdPrefix + this.g })));
  }

  protected onWsMessage(buf: Buffer, start: number, end: number): void {
    if (this.state === 1) {
      // The type comes first in our frames; look only at the head of the message.
      const head = buf.indexOf(JsonWsClient.#MESSAGE, start);
      if (head >= 0 && head < end && head - start < 8) {
        this.sink.message(this.i, buf, start, end, this.now());
        return;
      }
      if (buf.subarray(start, Math.min(end, start + 20)).includes('"kick"')) this.fail(`kicked: ${buf.subarray(start, end).toString('utf8')}`);
      return;
    }
    const text = buf.subarray(start, end);
    if (text.indexOf(JsonWsClient.#ENTERED) >= 0) this.enter();
    else if (text.includes('"error"') || text.includes('"kick"')) this.fail(`enter refused: ${text.subarray(0, 200).toString('utf8')}`);
  }
}

// ---------------------------------------------------------------- socket.io over raw WebSocket

const SIO_PONG = Buffer.from('3');
const SIO_CONNECT = Buffer.from('40');

/**
 * socket.io 4 over engine.io 4, websocket transport only (no polling first):
 * `0{open}` ← · `40` → · `40{sid}` ← · `420["enter",…]` → · `430[answer]` ←, then
 * events `42["onMsg",…]` or `42<ackId>["onMsg",…]` (answered `43<ackId>[]`), and
 * server pings `2` answered `3`. `pomelo` uses the sioconnector framing instead:
 * `42["message","<id><route>{json}"]` out, `42["message","{\"route\":…}"]` in.
 */
export class SioClient extends WsClient {
  readonly #pomelo: boolean;

  constructor(sink: Sink, i: number, g: number) {
    super(sink, i, g);
    this.#pomelo = sink.cfg.kind === 'sio-pomelo';
  }

  protected onOpen(): void {}

  protected onWsMessage(buf: Buffer, start: number, end: number): void {
    const c0 = buf[start]!;
    if (c0 === 0x34 /* '4' message */) {
      const c1 = buf[start + 1];
      if (c1 === 0x32 /* '2' EVENT */) {
        if (this.state === 0 && this.#pomelo) {
          // The Pomelo framing answers the enter as an event: 42["message","{\"id\":1,\"body\":…}"].
          const text = buf.subarray(start, end);
          if (text.indexOf('\\"code\\":200') >= 0) this.enter();
          else this.fail(`enter refused: ${text.subarray(0, 200).toString('utf8')}`);
          return;
        }
        if (this.state !== 1) return;
        // 42[ackId]["event",…]: an ack id is digits before '['.
        let k = start + 2;
        let ack = -1;
        while (k < end && buf[k]! >= 0x30 && buf[k]! <= 0x39) {
          ack = (ack < 0 ? 0 : ack * 10) + (buf[k]! - 0x30);
          k++;
        }
        if (buf.indexOf('"kick"', k) === k + 1) {
          this.fail(`kicked: ${buf.subarray(k, end).toString('utf8')}`);
          return;
        }
        this.sink.message(this.i, buf, k, end, this.now());
        if (ack >= 0) this.sendWs(OP_TEXT, Buffer.from(`43${ack}[]`));
        return;
      }
      if (c1 === 0x30 /* '0' CONNECT ack */) {
        this.#sendEnter();
        return;
      }
      if (c1 === 0x33 /* '3' ACK */) {
        // 430[{"code":200,…}]: our only request with an ack is the enter.
        if (this.state === 0) {
          const text = buf.subarray(start, end);
          if (text.indexOf(CODE_200) >= 0) this.enter();
          else this.fail(`enter refused: ${text.subarray(0, 200).toString('utf8')}`);
        }
        return;
      }
      if (c1 === 0x31 /* '1' DISCONNECT */) {
        this.fail('socket.io disconnect');
        return;
      }
      if (c1 === 0x34 /* '4' CONNECT_ERROR */) {
        this.fail(`socket.io connect error: ${buf.subarray(start, end).toString('utf8')}`);
      }
      return;
    }
    if (c0 === 0x32 /* '2' ping */) {
      this.sendWs(OP_TEXT, SIO_PONG);
      return;
    }
    if (c0 === 0x30 /* '0' open */) {
      this.sendWs(OP_TEXT, SIO_CONNECT);
      return;
    }
    if (c0 === 0x31 /* '1' close */) this.fail('engine.io close');
  }

  #sendEnter(): void {
    const cfg = this.sink.cfg;
    const clientId = cfg.clientIdPrefix + this.g;
    if (!this.#pomelo) {
      this.sendWs(OP_TEXT, Buffer.from(`420${JSON.stringify(['enter', { apikey: cfg.apikey, clientId }])}`));
      return;
    }
    // docs/pomelo-protocol.md §11.3: 4 id characters (32-bit BE), 1 route-length character, route, JSON body.
    const route = cfg.enterRoute;
    const head = String.fromCharCode(0, 0, 0, 1, route.length);
    const msg = head + route + JSON.stringify({ apikey: cfg.apikey, apiKey: cfg.apikey, clientId, role: 'client' });
    this.sendWs(OP_TEXT, Buffer.from(`42${JSON.stringify(['message', msg])}`));
  }

  override heartbeat(): void {}
}

// ---------------------------------------------------------------- MQTT 3.1.1

function mqttString(s: string): Buffer {
  const b = Buffer.from(s, 'utf8');
  const out = Buffer.allocUnsafe(2 + b.length);
  out.writeUInt16BE(b.length, 0);
  b.copy(out, 2);
  return out;
}

function mqttRemaining(n: number): Buffer {
  const bytes: number[] = [];
  do {
    let b = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    bytes.push(b);
  } while (n > 0);
  return Buffer.from(bytes);
}

/** MQTT 3.1.1 CONNECT (§3.1), clean session. */
export function mqttConnect(clientId: string, username: string, password: string, keepalive: number): Buffer {
  let flags = 0x02;
  const payload = [mqttString(clientId)];
  if (username !== '') {
    flags |= 0x80;
    payload.push(mqttString(username));
  }
  if (password !== '') {
    flags |= 0x40;
    payload.push(mqttString(password));
  }
  const vh = Buffer.from([0, 4, 0x4d, 0x51, 0x54, 0x54, 4, flags, keepalive >> 8, keepalive & 0xff]);
  const body = Buffer.concat([vh, ...payload]);
  return Buffer.concat([Buffer.from([0x10]), mqttRemaining(body.length), body]);
}

/** MQTT 3.1.1 SUBSCRIBE (§3.8) of one topic filter. */
export function mqttSubscribe(packetId: number, topic: string, qos: number): Buffer {
  const body = Buffer.concat([Buffer.from([packetId >> 8, packetId & 0xff]), mqttString(topic), Buffer.from([qos])]);
  return Buffer.concat([Buffer.from([0x82]), mqttRemaining(body.length), body]);
}

/** MQTT 3.1.1 PUBLISH (§3.3) header for a payload of `payloadLength` bytes. */
export function mqttPublishHeader(topic: string, qos: number, packetId: number, payloadLength: number): Buffer {
  const t = mqttString(topic);
  const idLen = qos > 0 ? 2 : 0;
  const rem = mqttRemaining(t.length + idLen + payloadLength);
  const out = Buffer.allocUnsafe(1 + rem.length + t.length + idLen);
  out[0] = 0x30 | (qos << 1);
  rem.copy(out, 1);
  t.copy(out, 1 + rem.length);
  if (qos > 0) out.writeUInt16BE(packetId, 1 + rem.length + t.length);
  return out;
}

const PINGREQ = Buffer.from([0xc0, 0x00]);

export class MqttClient extends Client {
  readonly #splitter = new Splitter(mqttPacketLength);
  readonly #onFrame = (buf: Buffer, start: number, end: number): void => this.#packet(buf, start, end);

  protected onConnect(): void {
    const cfg = this.sink.cfg;
    this.write(mqttConnect(cfg.clientIdPrefix + this.g, cfg.mqttUsername, '', MQTT_KEEPALIVE_S));
  }

  protected onData(chunk: Buffer): void {
    try {
      this.#splitter.push(chunk, this.#onFrame);
    } catch (err) {
      this.fail((err as Error).message);
    }
  }

  override heartbeat(): void {
    if (this.state === 1) this.write(PINGREQ);
  }

  #packet(buf: Buffer, start: number, end: number): void {
    const b0 = buf[start]!;
    const type = b0 >> 4;
    let off = start + 1;
    while ((buf[off]! & 0x80) !== 0) off++;
    off++;
    if (type === 3) {
      const qos = (b0 >> 1) & 3;
      const topicLen = buf.readUInt16BE(off);
      off += 2 + topicLen;
      if (qos > 0) {
        const hi = buf[off]!;
        const lo = buf[off + 1]!;
        off += 2;
        this.write(Buffer.from([qos === 1 ? 0x40 : 0x50, 0x02, hi, lo]));
      }
      this.sink.message(this.i, buf, off, end, this.now());
      return;
    }
    if (type === 2) {
      const rc = buf[off + 1]!;
      if (rc !== 0) {
        this.fail(`CONNACK return code ${rc}`);
        return;
      }
      const cfg = this.sink.cfg;
      this.write(mqttSubscribe(1, cfg.mqttTopic, cfg.qos));
      return;
    }
    if (type === 9) {
      const granted = buf[off + 2]!;
      if (granted === 0x80) this.fail('SUBACK refused the subscription');
      else this.enter();
      return;
    }
    if (type === 14) this.fail('DISCONNECT from the server');
    // PINGRESP, PUBREL: nothing to do.
  }
}

// ---------------------------------------------------------------- bare TCP

/** A socket and nothing else, for the bare `net` peer (idle only): entered once connected. */
// ---------------------------------------------------------------- ntfy (docs/ntfy.md)

const NTFY_OPEN = Buffer.from('"event":"open"');
const NL = 0x0a;

/**
 * An ntfy subscriber on the JSON stream: `GET /<topic>/json`, then one JSON object per
 * line (inside HTTP/1.1 chunks: the chunk-size lines are skipped as lines without a
 * marker). Entered at the `open` event; every other line goes to the sink as it is.
 */
export class NtfyClient extends Client {
  #rest: Buffer | undefined;
  #opened = false;

  protected onConnect(): void {
    this.write(`GET ${this.sink.cfg.path} HTTP/1.1\r\nHost: ${this.sink.cfg.host}\r\nAccept: application/x-ndjson\r\n\r\n`);
  }

  protected onData(chunk: Buffer): void {
    let buf = chunk;
    let start = 0;
    if (this.#rest !== undefined) {
      buf = Buffer.concat([this.#rest, chunk]);
      this.#rest = undefined;
    }
    for (;;) {
      const nl = buf.indexOf(NL, start);
      if (nl < 0) break;
      this.#line(buf, start, nl);
      start = nl + 1;
    }
    if (start < buf.length) this.#rest = Buffer.from(buf.subarray(start));
  }

  #line(buf: Buffer, start: number, end: number): void {
    if (!this.#opened) {
      const head = buf.subarray(start, Math.min(end, start + 12)).toString('latin1');
      if (head.startsWith('HTTP/1.1 ') && !head.startsWith('HTTP/1.1 200')) {
        this.fail(`refused: ${buf.subarray(start, end).toString('utf8')}`);
        return;
      }
      const at = buf.indexOf(NTFY_OPEN, start);
      if (at >= 0 && at < end) {
        this.#opened = true;
        this.enter();
      }
      return;
    }
    if (end - start > 20) this.sink.message(this.i, buf, start, end, this.now());
  }
}

export class RawTcpClient extends Client {
  protected onConnect(): void {
    this.enter();
  }

  protected onData(): void {}
}

export function createClient(sink: Sink, i: number, g: number): Client {
  switch (sink.cfg.kind) {
    case 'hybrid-tcp':
      return new HybridTcpClient(sink, i, g);
    case 'hybrid-ws':
      return new HybridWsClient(sink, i, g);
    case 'sio':
    case 'sio-pomelo':
      return new SioClient(sink, i, g);
    case 'mqtt':
      return new MqttClient(sink, i, g);
    case 'ws':
      return new JsonWsClient(sink, i, g);
    case 'ntfy':
      return new NtfyClient(sink, i, g);
    case 'tcp':
      return new RawTcpClient(sink, i, g);
  }
}
