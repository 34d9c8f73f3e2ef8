import type { SetLinks } from '../linked-set.js';
import type { Member } from '../../hub/members.js';
import type { EnteredAs } from '../../hub/observer.js';
import type { Socket } from 'node:net';
import { destroyOnError } from '../listen.js';
import {
  generate,
  type IConnectPacket,
  type IDisconnectPacket,
  type IPubackPacket,
  type IPublishPacket,
  type IPubrelPacket,
  type ISubscribePacket,
  type IUnsubscribePacket,
  type Packet,
} from 'mqtt-packet';
import type { ApiKey } from '../../ids.js';
import type { App } from '../../store/store.js';
import {
  CLOSE_REASONS,
  SKIP_REASONS,
  allocateConnectionId,
  type CloseReason,
  type Connection,
  type SkipReason,
  compactTime,
  expandTime,
  withBits,
  withFlag,
} from '../../hub/connection.js';
import { PEER_CLOSED, codeOf, leadingCode } from '../../hub/observer.js';
import { HubError, type Role } from '../../hub/hub.js';
import { isProtocolError } from '../../protocol/errors.js';
import type { WheelItem } from '../deadline-wheel.js';
import {
  CONNECT_REFUSALS,
  CONNECT_REFUSAL_BY_HUB_ERROR,
  CONNECT_REFUSAL_BY_LIMIT,
  CONNACK_MALFORMED_PACKET,
  DISCONNECT_BY_CLOSE_REASON,
  DISCONNECT_CODES,
  PACKET_ID_NOT_FOUND,
  PUBACK_BY_HUB_ERROR,
  PUBACK_CODES,
  SUBACK_FAILURES,
  UNSUBACK_CODES,
  type ConnectRefusal,
  type DisconnectName,
  type PubackName,
} from './mqtt-codes.js';
import { packetIdOffset, type DeliveryQos, type MqttPush } from './mqtt-encoder.js';
import { MalformedStringError, MqttPacketReader, UnsupportedVersionError, type MqttReaderSettings } from './mqtt-reader.js';
import { NO_APP, appTopics, classifyFilter, clientTopic, tagTopic, type AppTopics } from './mqtt-topics.js';
import { parsePushRequest, type PushRequest } from './push-request.js';
import type { MqttContext } from './mqtt-context.js';
import { LimitError, admissionEntered, admissionIdle, countRequest, releaseAdmission, type AdmissionTicket } from '../admission.js';
import { corkForTurn } from '../write-coalescer.js';

const Phase = {
  /** Socket accepted; the first packet must be CONNECT (MQTT-3.1.0-1). */
  awaitingConnect: 0,
  /** CONNECT read; the hub is checking it. Later packets wait in the backlog. */
  entering: 1,
  ready: 2,
  /** We said goodbye (or refused) and ended the socket; it has a grace period to flush. */
  closing: 3,
  closed: 4,
} as const;
type Phase = (typeof Phase)[keyof typeof Phase];

/** MQTT-3.1.2-24: a client that sends nothing for one and a half keep-alives is gone. */
const KEEPALIVE_FACTOR = 1.5;
/**
 * QoS 1 messages written and not yet PUBACKed, at most: every packet id (MQTT-2.3.1-2
 * allows no more), or an MQTT 5 client's Receive Maximum. Later ones wait in our queue,
 * counted in bufferedBytes. Not lower: the hub paces a resume by bufferedBytes alone, so
 * a small window would fill the queue during a replay and close the client as slow.
 */
const MAX_INFLIGHT = 0xffff;
/**
 * Packets read while an earlier one is still being handled (the socket is paused
 * meanwhile, so this is at most what one read chunk held).
 */
const MAX_BACKLOG = 4096;
/** Bytes counted for a queued message on top of its payload: topic and header. */
const QUEUED_OVERHEAD = 64;
/** How long a closing socket may take to flush what it has before it is dropped, ms. */
export const CLOSE_GRACE_MS = 2000;
/** How long a socket refused by a limit has to send its CONNECT (to hear why), ms. */
const REFUSAL_WAIT_MS = 1000;
/** Reason strings go to the peer: keep them short. */
const MAX_REASON_CHARS = 120;

const NOT_REQUESTS: ReadonlySet<Packet['cmd']> = new Set(['puback', 'pubrec', 'pubrel', 'pubcomp', 'pingreq']);

const DISCONNECT_REASONS: ReadonlyMap<string, DisconnectName> = new Map(Object.entries(DISCONNECT_BY_CLOSE_REASON));

type PublishRefusal = Exclude<PubackName, 'success'>;

/** A tag subscribed on this connection: its topic (the filter it was subscribed with) and QoS. */
interface TagSubscription {
  readonly topic: string;
  qos: DeliveryQos;
}

/** Where a connection's subscription to a filter that is not a tag sits in `#plainSubs`. */
const PLAIN_SUB_SHIFT = { all: 0, own: 2, presence: 4 } as const;
type PlainSub = keyof typeof PLAIN_SUB_SHIFT;

/** A socket with the MQTT connection it carries, for the listeners every socket shares. */
const OWNER = Symbol('mqtt connection');
interface OwnedSocket extends Socket {
  [OWNER]?: MqttConnection;
}

/** `#flags` of MqttConnection: the Phase in the low three bits, then these. */
const PHASE_BITS = 0b111;
const MANAGER = 1 << 3;
/** Deliveries at QoS 0 (every subscription granted 0); clear: QoS 1. */
const DELIVER_QOS0 = 1 << 4;
/** A hub call is running: packets wait in the backlog, reading is paused. */
const BUSY = 1 << 5;
/** Queued in the end-of-turn ack flush. */
const ACK_SCHEDULED = 1 << 6;
/** Subscriptions to `all`, own and `presence`, two bits each (PLAIN_SUB_SHIFT), from here. */
const PLAIN_SUBS_AT = 7;
const PLAIN_SUBS_BITS = 0b111111;
/** The CONNECT's keep-alive, seconds (MQTT: two bytes), from here. */
const KEEPALIVE_AT = 13;
const KEEPALIVE_BITS = 0xffff;

/** What few connections need: made at first use. */
class MqttRare {
  /** Why the server closed it, for the close report; unset: the peer went first. */
  closeReason: string | undefined = undefined;
  /** Packets read while a hub call runs; made for the wait. */
  backlog: Backlog | undefined = undefined;
  /** QoS 2 pushes stored and PUBRECed, waiting for PUBREL (MQTT-4.3.3). */
  qos2Received: Set<number> | undefined = undefined;
  /**
   * MQTT 5: QoS 1 and 2 PUBLISHes received that we have not yet answered with a PUBACK or
   * PUBCOMP (or a PUBREC failure, which ends the exchange), for our Receive Maximum (§3.3.4).
   */
  inboundUnacked = 0;
}

/** Who the connection will be once the hub has entered it. */
interface Entering {
  readonly app: App;
  readonly clientId: string;
  readonly clean: boolean;
  readonly role: Role;
}

/**
 * What a CONNECT set: the protocol level (with the reader's settings for it) and the
 * client's own limits (MQTT 5). Connections that ask for no limits share one per level.
 */
interface ConnectOptions {
  readonly version: 3 | 4 | 5;
  /** For the next packet reader (shared, frozen). */
  readonly readerSettings: MqttReaderSettings | undefined;
  /** Options for mqtt-packet's `generate`. */
  readonly generate: { readonly protocolVersion: number; readonly maximumPacketSize?: number };
  /** The client's Maximum Packet Size (MQTT 5); 0: none given. */
  readonly clientMaxPacket: number;
  readonly maxInflight: number;
  /** MQTT-3.1.2-29: reason strings on PUBACK, PUBREC… only when the client wants them. */
  readonly problemInfo: boolean;
}

const DEFAULT_OPTIONS: ConnectOptions = Object.freeze({
  version: 4,
  readerSettings: undefined,
  generate: Object.freeze({ protocolVersion: 4 }),
  clientMaxPacket: 0,
  maxInflight: MAX_INFLIGHT,
  problemInfo: true,
});

/** The options of each reader setting (protocol level) for clients that set no limits: a handful in all. */
const SHARED_OPTIONS = new Map<MqttReaderSettings, ConnectOptions>();

/** The shared options for what a reader learnt from the CONNECT (its protocol level). */
function sharedOptions(readerSettings: MqttReaderSettings): ConnectOptions {
  let options = SHARED_OPTIONS.get(readerSettings);
  if (options === undefined) {
    const level = readerSettings.protocolVersion;
    const version = level === 3 || level === 5 ? level : 4;
    options = Object.freeze({ ...DEFAULT_OPTIONS, version, readerSettings, generate: Object.freeze({ protocolVersion: version }) });
    SHARED_OPTIONS.set(readerSettings, options);
  }
  return options;
}

/**
 * A connection's outbound delivery state: the QoS 1 window, our queue, cumulative acks.
 * Made at the first delivery; dropped when nothing is in flight, queued or unreported
 * and the client is idle (its PINGREQ), so a connection that got messages once does not
 * keep their bookkeeping. Packet ids may start over then: none is in flight.
 */
class Outbound {
  /** Packet id → message id, in the order written (so the first is the oldest); made at the first QoS 1 write. */
  inflight: Map<number, number> | undefined = undefined;
  nextPacketId = 1;
  queue: (MqttPush | undefined)[] | undefined = undefined;
  queueHead = 0;
  queuedBytes = 0;
  /** Highest message id PUBACKed or written at QoS 0. */
  ackCandidate = 0;
  /** Highest id we told the hub. */
  ackedUpTo = 0;

  get settled(): boolean {
    return (this.inflight === undefined || this.inflight.size === 0) && this.queue === undefined && this.ackCandidate <= this.ackedUpTo;
  }
}

/** Packets read while an earlier one is still being handled. */
interface Backlog {
  readonly packets: (Packet | undefined)[];
  head: number;
}

/** Input that breaks the protocol: the connection ends with this MQTT 5 reason. */
class MqttViolation extends Error {
  override readonly name = 'MqttViolation';
  constructor(
    readonly reason: DisconnectName,
    message: string,
  ) {
    super(message);
  }
}

/**
 * One MQTT 3.1.1 / 5 connection: CONNECT and auth, keep-alive, subscriptions, QoS 1
 * delivery with per-connection packet ids, manager pushes, and the one place where
 * its packets become hub calls (docs/conventions.md §4).
 */
export class MqttConnection implements Connection<MqttPush>, WheelItem {
  // Methods are TypeScript-`private`, not `#`-private: a class with `#` methods costs a
  // brand slot in every instance (hybrid-connection.ts). What is rare or short-lived
  // lives in objects made when needed (ConnectOptions, Outbound, MqttRare), and small
  // state shares one integer (`#flags`): an idle connection is 22 slots, not 45.
  readonly id = allocateConnectionId();
  /** The hub's and its observer's slots (Connection.hubMember, .enteredAs). */
  hubMember: Member | undefined = undefined;
  enteredAs: EnteredAs | undefined = undefined;
  // A getter, not a field: one less slot per connection.
  get connector(): 'mqtt' {
    return 'mqtt';
  }
  readonly #connectedAt = compactTime(Date.now());
  get connectedAt(): number {
    return expandTime(this.#connectedAt);
  }
  readonly remoteAddress: string;
  wheelSlot = -1;
  wheelNext: WheelItem | undefined = undefined;
  wheelPrev: WheelItem | undefined = undefined;
  /** The connector's LinkedSet of open connections owns these. */
  setNext: SetLinks | undefined = undefined;
  setPrev: SetLinks | undefined = undefined;
  /** Limits bookkeeping (src/connectors/admission.ts), set by the connector. */
  admission: AdmissionTicket | undefined;

  readonly #ctx: MqttContext;
  readonly #socket: Socket;
  /** Only while a packet is split across chunks: an idle connection holds no reader. */
  #reader: MqttPacketReader | undefined = undefined;
  /** Phase, role, delivery QoS, plain subscriptions, busy, ack scheduled, keep-alive: see PHASE_BITS… */
  #flags: number = Phase.awaitingConnect;
  /** The close reason, a packet backlog, QoS 2 ids: see MqttRare. */
  #rare: MqttRare | undefined;
  /**
   * Before CONNECT: the limit it will be refused for, if any. While the hub enters us:
   * who we will be once it has. Then nothing.
   */
  #connecting: LimitError | Entering | undefined;

  /** From CONNECT: protocol level and the client's own limits, shared by connections that set none. */
  #options: ConnectOptions = DEFAULT_OPTIONS;

  // Who, once entered. The app's topics are shared by its connections (mqtt-topics.ts).
  #topics: AppTopics = NO_APP;
  /** The CONNECT client id, which names our own topic (managers' too). */
  #connectId = '';
  /** Tag → its topic (also its filter) and granted QoS, in subscription order (topic choice); created at the first tag. */
  #tags: Map<string, TagSubscription> | undefined;

  /** QoS 1 window, queue and acks: made at the first delivery, dropped when settled and idle. */
  #out: Outbound | undefined;

  /** `remoteAddress`: read once by the connector (listen.ts `peerAddress`). */
  constructor(ctx: MqttContext, socket: Socket, remoteAddress: string) {
    this.#ctx = ctx;
    this.#socket = socket;
    this.remoteAddress = remoteAddress;
    socket.setNoDelay(true);
    // Listeners shared by every socket, which find their connection on the socket: no
    // closures or once-wrappers per idle connection (as in hybrid-connection.ts).
    (socket as OwnedSocket)[OWNER] = this;
    socket.on('data', MqttConnection.#onSocketData);
    socket.on('error', destroyOnError);
    socket.on('close', MqttConnection.#onSocketClose); // 'close' comes once
    // A socket that never sends its CONNECT is dropped at the deadline.
    ctx.wheel.arm(this, ctx.connectTimeoutMs);
    ctx.hub.observer.opened(this);
  }

  static readonly #onSocketData = function (this: OwnedSocket, chunk: Buffer): void {
    const conn = this[OWNER];
    if (conn !== undefined) conn.onData(chunk);
  };

  static readonly #onSocketClose = function (this: OwnedSocket): void {
    const conn = this[OWNER];
    if (conn !== undefined) conn.onTransportClosed();
  };

  private get v5(): boolean {
    return this.#options.version === 5;
  }

  // ---- What #flags holds ------------------------------------------------------------

  private get phase(): Phase {
    return (this.#flags & PHASE_BITS) as Phase;
  }
  private set phase(phase: Phase) {
    this.#flags = withBits(this.#flags, 0, PHASE_BITS, phase);
  }

  private get role(): Role {
    return (this.#flags & MANAGER) !== 0 ? 'manager' : 'client';
  }
  private set role(role: Role) {
    this.#flags = withFlag(this.#flags, MANAGER, role === 'manager');
  }

  /** The client id pushes find it by, once entered; managers have none. */
  private get clientId(): string | undefined {
    return this.role === 'client' && this.#connectId !== '' ? this.#connectId : undefined;
  }

  private get deliveryQos(): DeliveryQos {
    return (this.#flags & DELIVER_QOS0) !== 0 ? 0 : 1;
  }
  private set deliveryQos(qos: DeliveryQos) {
    this.#flags = withFlag(this.#flags, DELIVER_QOS0, qos === 0);
  }

  /** Subscriptions to `all`, own and `presence`: two bits each, 0 = none, else granted QoS + 1. */
  private get plainSubs(): number {
    return (this.#flags >> PLAIN_SUBS_AT) & PLAIN_SUBS_BITS;
  }
  private set plainSubs(subs: number) {
    this.#flags = withBits(this.#flags, PLAIN_SUBS_AT, PLAIN_SUBS_BITS, subs);
  }

  private get busy(): boolean {
    return (this.#flags & BUSY) !== 0;
  }
  private set busy(on: boolean) {
    this.#flags = withFlag(this.#flags, BUSY, on);
  }

  /** MQTT-3.1.2-24: silent for 1.5 × the CONNECT's keep-alive is gone; 0: no keep-alive. */
  private get keepaliveMs(): number {
    return Math.ceil(((this.#flags >> KEEPALIVE_AT) & KEEPALIVE_BITS) * 1000 * KEEPALIVE_FACTOR);
  }
  private set keepaliveSeconds(seconds: number) {
    this.#flags = withBits(this.#flags, KEEPALIVE_AT, KEEPALIVE_BITS, seconds);
  }

  /** For writing what MqttRare holds (reads go through `this.#rare?.`). */
  private rare(): MqttRare {
    return (this.#rare ??= new MqttRare());
  }

  private get ackScheduled(): boolean {
    return (this.#flags & ACK_SCHEDULED) !== 0;
  }
  private set ackScheduled(on: boolean) {
    this.#flags = withFlag(this.#flags, ACK_SCHEDULED, on);
  }

  get encoder(): MqttContext['encoder'] {
    return this.#ctx.encoder;
  }

  get closed(): boolean {
    return this.phase >= Phase.closing;
  }

  get bufferedBytes(): number {
    return this.#socket.writableLength + (this.#out?.queuedBytes ?? 0);
  }

  // ---- Connection: the hub's side ----------------------------------------------------

  write(push: MqttPush): SkipReason | void {
    if (this.phase >= Phase.closing) return;
    if (this.phase === Phase.entering) this.accepted();
    // MQTT-3.1.2-25: no packet over the Maximum Packet Size the client announced. A stored
    // message that would be one is refused now, not queued: the hub records it skipped
    // for this client (docs/delivery.md) and goes on with the next. The header is the one
    // `send` writes (memoised per topic), so this costs nothing more when it fits.
    const max = this.#options.clientMaxPacket;
    if (max > 0 && push.message !== undefined && this.phase === Phase.ready && push.header(this.v5, this.deliveryQos, this.topicFor(push)).length + push.payload.length > max) {
      return SKIP_REASONS.clientMaxPacket;
    }
    // Before CONNACK (MQTT-3.2.0-1: it goes first) and behind a full QoS 1 window,
    // messages wait in order.
    if (this.phase !== Phase.ready || this.#out?.queue !== undefined || !this.send(push)) this.enqueue(push);
  }

  /** MQTT 5: DISCONNECT with the reason's code (mqtt-codes.ts), then close. MQTT 3.1.1 has no server DISCONNECT. */
  close(reason: CloseReason): void {
    if (this.phase >= Phase.closing) return;
    this.#ctx.log.debug({ conn: this.id, reason }, 'mqtt connection closed by the server');
    this.rare().closeReason ??= reason;
    if (this.phase === Phase.ready && this.v5) this.disconnect(DISCONNECT_REASONS.get(reason) ?? 'unspecified', reason);
    this.end();
  }

  /** Drops the socket without a word (shutdown grace period over). */
  destroy(): void {
    if (this.phase < Phase.closing) this.phase = Phase.closing;
    this.#socket.destroy();
  }

  /**
   * Over a connection limit: the CONNECT is answered with a CONNACK refusal (its code
   * depends on the protocol version the CONNECT names). A peer that sends no CONNECT
   * soon is dropped.
   */
  refuseAtConnect(err: LimitError): void {
    this.#connecting = err;
    this.#ctx.wheel.arm(this, Math.min(this.#ctx.connectTimeoutMs, REFUSAL_WAIT_MS));
  }

  /** The wheel says a deadline passed: no CONNECT in time, keep-alive, or close grace. */
  expire(): void {
    switch (this.phase) {
      case Phase.awaitingConnect:
      case Phase.entering:
        this.#ctx.log.debug({ conn: this.id }, 'mqtt connect timeout');
        this.rare().closeReason ??= CLOSE_REASONS.handshakeTimeout;
        this.destroy();
        return;
      case Phase.ready:
        // Reading is paused while a hub call runs: the silence is ours, not the client's.
        if (this.busy) this.#ctx.wheel.arm(this, this.keepaliveMs);
        else this.close(CLOSE_REASONS.heartbeatTimeout);
        return;
      case Phase.closing:
        this.#socket.destroy();
        return;
      case Phase.closed:
        return;
      default:
        assertNever(this.phase);
    }
  }

  // ---- Outbound ----------------------------------------------------------------------

  /** The delivery state, made at the first delivery. */
  private outbound(): Outbound {
    return (this.#out ??= new Outbound());
  }

  /** Messages wait in the queue, which exists only while one waits. */
  private enqueue(push: MqttPush): void {
    const out = this.outbound();
    (out.queue ??= []).push(push);
    out.queuedBytes += push.payload.length + QUEUED_OVERHEAD;
  }

  private drainQueue(): void {
    const out = this.#out;
    const queue = out?.queue;
    if (out === undefined || queue === undefined) return;
    while (out.queueHead < queue.length && this.phase === Phase.ready) {
      const push = queue[out.queueHead]!;
      if (!this.send(push)) break;
      queue[out.queueHead++] = undefined;
      out.queuedBytes -= push.payload.length + QUEUED_OVERHEAD;
    }
    if (out.queueHead === queue.length) {
      out.queue = undefined;
      out.queueHead = 0;
    } else if (out.queueHead > 1024 && out.queueHead * 2 > queue.length) {
      out.queue = queue.slice(out.queueHead);
      out.queueHead = 0;
    }
  }

  /**
   * Writes one PUBLISH: the push's shared header for our topic (a copy with our packet
   * id at QoS 1) and its shared payload. False when the QoS 1 window is full.
   */
  private send(push: MqttPush): boolean {
    const msg = push.message;
    const qos: DeliveryQos = msg === undefined ? 0 : this.deliveryQos;
    const options = this.#options;
    const inflightNow = this.#out?.inflight;
    if (qos === 1 && inflightNow !== undefined && inflightNow.size >= options.maxInflight) return false;
    const topic = msg === undefined ? this.#topics.presence : this.topicFor(push);
    const shared = push.header(this.v5, qos, topic);
    if (options.clientMaxPacket > 0 && shared.length + push.payload.length > options.clientMaxPacket) {
      // MQTT-3.1.2-25: a packet over the client's Maximum Packet Size is discarded as
      // if it had been sent. Stored messages are refused in `write` already; this is a
      // presence event, or a message queued before the delivery QoS changed.
      this.#ctx.log.debug({ conn: this.id, bytes: shared.length + push.payload.length, max: options.clientMaxPacket }, 'mqtt publish over the client maximum skipped');
      if (msg !== undefined) this.autoAck(msg.id);
      return true;
    }
    let header = shared;
    if (msg !== undefined && qos === 1) {
      const out = this.outbound();
      const packetId = allocatePacketId(out);
      header = Buffer.allocUnsafe(shared.length);
      shared.copy(header);
      header.writeUInt16BE(packetId, packetIdOffset(header, this.v5));
      (out.inflight ??= new Map()).set(packetId, msg.id);
    }
    if (!this.#socket.writable) return true;
    // Corked until the end of this turn, with the other pushes of the turn: one writev
    // for all of them (write-coalescer.ts). writableLength counts the held bytes too,
    // for at most one turn, far under the slow-consumer cap.
    corkForTurn(this.#socket);
    this.#socket.write(header);
    this.#socket.write(push.payload);
    this.#ctx.hub.observer.wrote('mqtt', header.length + push.payload.length);
    // QoS 0 has no acknowledgement: what was written counts as acked.
    if (msg !== undefined && qos === 0) this.autoAck(msg.id);
    return true;
  }

  /** Topic priority: to this client by id > to one of its tags > broadcast. */
  private topicFor(push: MqttPush): string {
    const target = push.message!.target;
    const clientId = this.clientId;
    if (clientId !== undefined && push.targetsClient(clientId)) return this.ownTopic();
    if (target.tags.length > 0) {
      if (this.#tags !== undefined) for (const [tag, sub] of this.#tags) if (target.tags.includes(tag)) return sub.topic;
      // The hub chose us by a tag kept from an earlier connection: name the message's first.
      if (!target.all) return tagTopic(this.#topics.apikey, target.tags[0]!);
    }
    return target.all ? this.#topics.all : this.ownTopic();
  }

  /** apps/{apikey}/clients/{clientId}: built for each message sent to it (a string kept per connection would cost a slot in all). */
  private ownTopic(): string {
    return clientTopic(this.#topics.apikey, this.#connectId);
  }

  private autoAck(messageId: number): void {
    const out = this.outbound();
    if (messageId > out.ackCandidate) out.ackCandidate = messageId;
    // Not now: the hub is inside its write to us and has not counted the message as sent.
    if (this.ackScheduled) return;
    this.ackScheduled = true;
    if (MqttConnection.#ackQueue.push(this) === 1) queueMicrotask(MqttConnection.#flushAckQueue);
  }

  /** Connections with acks to tell the hub at the end of this turn: one microtask for all, no closure each. */
  static #ackQueue: MqttConnection[] = [];

  static readonly #flushAckQueue = (): void => {
    const queue = MqttConnection.#ackQueue;
    // Acks told now can make the hub write, and so queue acks for the next microtask.
    MqttConnection.#ackQueue = [];
    for (const conn of queue) {
      conn.ackScheduled = false;
      conn.applyAcks();
    }
  };

  /**
   * Tells the hub how far the client has processed. Hub acks are cumulative, so we
   * never ack past a message still in flight: the oldest in-flight one bounds it.
   */
  private applyAcks(): void {
    const out = this.#out;
    if (out === undefined) return;
    let upTo = out.ackCandidate;
    const inflight = out.inflight;
    const oldest = inflight === undefined || inflight.size === 0 ? undefined : inflight.values().next().value;
    if (oldest !== undefined && oldest - 1 < upTo) upTo = oldest - 1;
    if (upTo > out.ackedUpTo && this.phase === Phase.ready) {
      out.ackedUpTo = upTo;
      this.#ctx.hub.ack(this, upTo);
    }
  }

  private control(packet: Packet): void {
    // A PUBACK, or a PUBREC with a failure code, ends a QoS 1 / 2 exchange the client
    // started (MQTT 5 §4.9): one less toward our Receive Maximum. PUBCOMP: onPubrel.
    if (packet.cmd === 'puback' || (packet.cmd === 'pubrec' && (packet.reasonCode ?? 0) >= 0x80)) this.inboundAnswered();
    if (!this.#socket.writable) return;
    const bytes = generate(packet, this.#options.generate);
    this.#socket.write(bytes);
    this.#ctx.hub.observer.wrote('mqtt', bytes.length);
  }

  private disconnect(name: DisconnectName, why: string): void {
    const packet: IDisconnectPacket = { cmd: 'disconnect', reasonCode: DISCONNECT_CODES[name], properties: { reasonString: short(why) } };
    this.control(packet);
  }

  /** Ends the socket after what is written; the wheel drops it if the peer does not read. */
  private end(): void {
    if (this.phase === Phase.closed) return;
    this.phase = Phase.closing;
    this.#out = undefined;
    this.#socket.end();
    this.#ctx.wheel.arm(this, CLOSE_GRACE_MS);
  }

  private onTransportClosed(): void {
    this.phase = Phase.closed;
    this.#ctx.wheel.disarm(this);
    this.#ctx.closed(this);
    this.#out = undefined;
    if (this.#rare !== undefined) this.#rare.backlog = undefined;
    // Once: 'close' comes once.
    this.#ctx.hub.leave(this);
    this.#ctx.hub.observer.closed(this, this.#rare?.closeReason ?? PEER_CLOSED);
    // Here rather than in a 'close' listener of its own: one closure fewer per connection.
    releaseAdmission(this);
  }

  // ---- Inbound -----------------------------------------------------------------------

  private onData(chunk: Buffer): void {
    if (this.phase >= Phase.closing) return;
    let packets: Packet[];
    const reader = this.#reader ?? new MqttPacketReader(this.#ctx.maxPacketBytes, this.#options.readerSettings);
    try {
      packets = reader.push(chunk);
    } catch (err) {
      this.#reader = reader;
      // A CONNECT refused for a bad string: its refusal is spoken at the level it named.
      if (reader.settings !== this.#options.readerSettings && this.phase === Phase.awaitingConnect) this.#options = sharedOptions(reader.settings);
      this.reject(err);
      return;
    }
    // What the reader learnt from a CONNECT (its protocol level), for the next reader and
    // for onConnect below; once per connection.
    if (reader.settings !== this.#options.readerSettings) this.#options = sharedOptions(reader.settings);
    this.#reader = reader.idle ? undefined : reader;
    for (const p of packets) {
      this.receive(p);
      if (this.phase >= Phase.closing) return;
    }
  }

  private receive(p: Packet): void {
    // Acks and pings answer or keep up what we do: not counted as requests.
    if (!NOT_REQUESTS.has(p.cmd) && !countRequest(this)) {
      this.reject(new MqttViolation('messageRateTooHigh', new LimitError('LIMIT_REQUEST_RATE').reason));
      return;
    }
    if (this.phase === Phase.ready) {
      const keepaliveMs = this.keepaliveMs;
      if (keepaliveMs > 0) this.#ctx.wheel.arm(this, keepaliveMs);
    }
    if (p.cmd === 'publish' && p.qos > 0 && this.v5 && this.overReceiveMaximum()) return;
    if (this.busy) {
      const backlog = (this.rare().backlog ??= { packets: [], head: 0 });
      if (backlog.packets.length - backlog.head >= MAX_BACKLOG) {
        this.reject(new MqttViolation('quotaExceeded', `more than ${MAX_BACKLOG} packets sent ahead`));
        return;
      }
      backlog.packets.push(p);
      return;
    }
    this.dispatch(p);
  }

  /** Handles one packet; one that needs the hub holds the others until it is done. */
  private dispatch(p: Packet): void {
    let work: Promise<void> | undefined;
    try {
      work = this.handle(p);
    } catch (err) {
      this.reject(err);
      return;
    }
    if (work === undefined) return;
    this.busy = true;
    this.#socket.pause();
    void work.then(
      () => this.workDone(),
      (err: unknown) => {
        this.reject(err);
        this.workDone();
      },
    );
  }

  private workDone(): void {
    this.busy = false;
    const rare = this.#rare;
    const backlog = rare?.backlog;
    if (rare !== undefined && backlog !== undefined) {
      const packets = backlog.packets;
      while (!this.busy && this.phase < Phase.closing && backlog.head < packets.length) {
        const p = packets[backlog.head]!;
        packets[backlog.head++] = undefined;
        this.dispatch(p);
      }
      // Dropped once empty (and never reused after close): a new one comes with the next wait.
      if (rare.backlog === backlog && backlog.head >= packets.length) rare.backlog = undefined;
    }
    if (!this.busy && this.phase < Phase.closing) this.#socket.resume();
  }

  /** Bad input: debug log, MQTT 5 DISCONNECT with a reason code, close (docs/conventions.md §4). */
  private reject(err: unknown): void {
    if (this.phase >= Phase.closing) return;
    if (err instanceof UnsupportedVersionError && this.phase === Phase.awaitingConnect) {
      // MQTT-3.1.2-2: CONNACK 0x01 (unacceptable protocol level), then close.
      this.#ctx.log.debug({ conn: this.id, reason: err.message }, 'mqtt connect refused');
      this.rare().closeReason = `MQTT_UNSUPPORTED_PROTOCOL_VERSION: ${err.message}`;
      this.#ctx.hub.observer.refused('mqtt', 'MQTT_UNSUPPORTED_PROTOCOL_VERSION', err.message, this);
      this.control({ cmd: 'connack', sessionPresent: false, returnCode: CONNECT_REFUSALS.badProtocolVersion.v3 });
      this.end();
      return;
    }
    if (err instanceof MalformedStringError && this.phase === Phase.awaitingConnect && (err.inClientId || this.v5)) {
      this.refuseBadConnectString(err);
      return;
    }
    let name: DisconnectName;
    let message: string;
    if (err instanceof MqttViolation) {
      name = err.reason;
      message = err.message;
    } else if (isProtocolError(err)) {
      name = err.code === 'LIMIT_PAYLOAD' ? 'packetTooLarge' : 'malformed';
      message = err.message;
    } else {
      name = 'unspecified';
      message = 'internal error';
      this.#ctx.log.warn({ err, conn: this.id }, 'mqtt packet handler failed');
    }
    this.#ctx.log.debug({ conn: this.id, code: name, reason: message }, 'mqtt connection rejected');
    const code = isProtocolError(err) ? err.code : (leadingCode(message) ?? codeOf('MQTT', name));
    this.rare().closeReason ??= `${code}: ${message}`;
    this.#ctx.hub.observer.refused('mqtt', code, message, this);
    if (this.phase === Phase.ready && this.v5) this.disconnect(name, message);
    this.end();
  }

  /** Returns a promise when the packet needs the hub; throws MqttViolation for bad input. */
  private handle(p: Packet): Promise<void> | undefined {
    if (this.phase === Phase.awaitingConnect) {
      // MQTT-3.1.0-1: the first packet must be CONNECT.
      if (p.cmd !== 'connect') throw new MqttViolation('protocolError', `the first packet must be CONNECT, not ${p.cmd}`);
      return this.onConnect(p);
    }
    switch (p.cmd) {
      case 'connect':
        // MQTT-3.1.0-2: a second CONNECT is a protocol violation.
        throw new MqttViolation('protocolError', 'a second CONNECT');
      case 'publish':
        return this.onPublish(p);
      case 'puback':
        this.onPuback(p);
        return undefined;
      case 'pubrel':
        this.onPubrel(p);
        return undefined;
      case 'subscribe':
        return this.onSubscribe(p);
      case 'unsubscribe':
        return this.onUnsubscribe(p);
      case 'pingreq':
        this.onPingreq();
        return undefined;
      case 'disconnect':
        this.#ctx.log.debug({ conn: this.id, reasonCode: p.reasonCode }, 'mqtt client disconnected');
        this.end();
        return undefined;
      case 'pubrec':
      case 'pubcomp':
        throw new MqttViolation('protocolError', `${p.cmd} for a QoS 2 message the server never sent`);
      case 'auth':
        throw new MqttViolation('protocolError', 'enhanced authentication (AUTH) is not supported');
      case 'connack':
      case 'suback':
      case 'unsuback':
      case 'pingresp':
        throw new MqttViolation('protocolError', `${p.cmd} is sent by servers, not clients`);
      default:
        return assertNever(p);
    }
  }

  // ---- CONNECT -----------------------------------------------------------------------

  private onConnect(p: IConnectPacket): Promise<void> | undefined {
    // The protocol level is in #options already: onData took it from the reader.
    this.phase = Phase.entering;
    this.keepaliveSeconds = p.keepalive ?? 0;
    const refusal = this.#connecting;
    this.#connecting = undefined;
    if (refusal instanceof LimitError) return this.refuse(CONNECT_REFUSAL_BY_LIMIT[refusal.code], refusal.reason);
    const props = p.properties;
    if (this.v5 && props !== undefined) {
      if (props.authenticationMethod !== undefined) return this.refuse('badAuthMethod', 'enhanced authentication is not supported');
      // MQTT 5 §3.1.2.11.3: a Receive Maximum of 0 is a protocol error.
      if (props.receiveMaximum === 0) throw new MqttViolation('protocolError', 'a Receive Maximum of 0');
      const receiveMaximum = props.receiveMaximum !== undefined && props.receiveMaximum > 0 ? Math.min(MAX_INFLIGHT, props.receiveMaximum) : MAX_INFLIGHT;
      const maximumPacketSize = props.maximumPacketSize !== undefined && props.maximumPacketSize > 0 ? props.maximumPacketSize : 0;
      const problemInfo = props.requestProblemInformation !== false;
      if (receiveMaximum !== MAX_INFLIGHT || maximumPacketSize !== 0 || !problemInfo) {
        // Limits of its own: options of its own.
        const base = this.#options;
        this.#options = {
          ...base,
          maxInflight: receiveMaximum,
          clientMaxPacket: maximumPacketSize,
          problemInfo,
          generate: maximumPacketSize > 0 ? { protocolVersion: base.version, maximumPacketSize } : base.generate,
        };
      }
    }
    // MQTT-3.1.3-8: we assign no ids; a device's client id is how pushes find it.
    if (p.clientId === '') return this.refuse('identifierRejected', 'a client id is required');
    if (p.username === undefined || p.username === '') return this.refuse('badCredentials', 'the username must be the app key');
    // Clean session (3.1.1) / Clean Start (5): start from now. Otherwise resume: what was
    // pushed while the client was away arrives now (MQTT 5 §3.1.2.4, 3.1.1 §3.1.2.4).
    const clean = p.clean !== false;
    return this.enter(p.username, p.clientId, p.password?.toString('utf8'), clean);
  }

  private async enter(apikey: string, clientId: string, password: string | undefined, clean: boolean): Promise<void> {
    try {
      const app = await this.#ctx.hub.app(apikey);
      await this.authenticate(app, clientId, password, clean);
    } catch (err) {
      this.#connecting = undefined;
      // Accepted at the hub's first write, then failed: too late for a CONNACK refusal.
      if (this.phase === Phase.ready) {
        this.reject(err);
        return;
      }
      if (err instanceof HubError) {
        this.refuse(CONNECT_REFUSAL_BY_HUB_ERROR[err.code], err.message, err.code);
        return;
      }
      this.#ctx.log.warn({ err, conn: this.id }, 'mqtt connect failed');
      this.refuse('serverUnavailable', 'the server could not take the connection');
      return;
    }
    this.accepted();
  }

  /**
   * The auth rule (docs/connectors.md): username = apikey. A password is either
   * the app's secret — the connection is a manager — or, when the app requires client
   * tokens, the client's token. No password: a client of an app without tokens.
   */
  private async authenticate(app: App, clientId: string, password: string | undefined, clean: boolean): Promise<void> {
    const hub = this.#ctx.hub;
    if (password !== undefined) {
      try {
        this.#connecting = { app, clientId, clean, role: 'manager' };
        await hub.enterManager(this, app.apikey, password, undefined);
        return;
      } catch (err) {
        this.#connecting = undefined;
        if (!(err instanceof HubError && err.code === 'AUTH_FAILED') || !app.requireClientToken) throw err;
      }
    }
    this.#connecting = { app, clientId, clean, role: 'client' };
    await hub.enterClient(this, {
      apikey: app.apikey,
      clientId,
      // MQTT-3.1.2-6 (3.1.1) / MQTT-3.1.2-4 (5): a clean session discards the stored one,
      // so a later persistent connect does not get what was pushed before this one.
      resumeAfter: clean ? 'fresh' : 'stored',
      ...(password !== undefined ? { token: password } : {}),
    });
  }

  /**
   * The hub took the connection: CONNACK, then whatever waited. Runs when the enter
   * call returns, or earlier, at the hub's first write: the hub writes only to
   * connections it has registered, and a replay from the store can start writing
   * before the enter call's caller resumes. CONNACK must still go first (MQTT-3.2.0-1).
   */
  private accepted(): void {
    const entering = this.#connecting;
    // Closed while we waited (timeout, replaced): the socket is going, say nothing.
    if (this.phase !== Phase.entering || entering === undefined || entering instanceof LimitError) return;
    this.#connecting = undefined;
    const { app, clientId, clean, role } = entering;
    this.#topics = appTopics(app.apikey);
    this.role = role;
    this.#connectId = clientId;
    this.phase = Phase.ready;
    admissionEntered(this);
    // Session present: the client asked to resume and the store held its position
    // (3.1.1 MQTT-3.2.2-2/-3, MQTT 5 MQTT-3.2.2-3); never after a clean session (3.1.1
    // MQTT-3.2.2-1, MQTT 5 MQTT-3.2.2-2) nor for a manager, which has no session. MQTT
    // 3.1 has no such flag (the bit is reserved).
    const member = this.hubMember;
    const sessionPresent = !clean && this.#options.version !== 3 && member?.role === 'client' && member.resumed;
    this.control(
      this.v5
        ? {
            cmd: 'connack',
            sessionPresent,
            reasonCode: 0,
            properties: {
              maximumPacketSize: this.#ctx.maxPacketBytes,
              // MQTT 5 §3.2.2.3.3: what we take unacknowledged (overReceiveMaximum).
              receiveMaximum: this.#ctx.receiveMaximum,
              retainAvailable: false,
              wildcardSubscriptionAvailable: false,
              subscriptionIdentifiersAvailable: false,
              sharedSubscriptionAvailable: false,
            },
          }
        : { cmd: 'connack', sessionPresent, returnCode: 0 },
    );
    const keepaliveMs = this.keepaliveMs;
    if (keepaliveMs > 0) this.#ctx.wheel.arm(this, keepaliveMs);
    else this.#ctx.wheel.disarm(this);
    this.drainQueue();
  }

  /**
   * A CONNECT with a string that is not well-formed UTF-8 or holds U+0000. In the client
   * id: CONNACK "identifier rejected" (0x02; MQTT-3.1.3-9 allows it before the close;
   * MQTT 5: 0x85). Elsewhere: MQTT 5 CONNACK 0x81 Malformed Packet (§4.13.1); MQTT 3.1.1
   * just closes (MQTT-1.5.3-1), in `reject`.
   */
  private refuseBadConnectString(err: MalformedStringError): void {
    if (err.inClientId) {
      this.refuse('identifierRejected', err.message);
      return;
    }
    this.#ctx.log.debug({ conn: this.id, reason: err.message }, 'mqtt connect refused');
    this.rare().closeReason ??= `${err.code}: ${err.message}`;
    this.#ctx.hub.observer.refused('mqtt', err.code, err.message, this);
    this.control({ cmd: 'connack', sessionPresent: false, reasonCode: CONNACK_MALFORMED_PACKET, properties: { reasonString: short(err.message) } });
    this.end();
  }

  private refuse(refusal: ConnectRefusal, why: string, stableCode: string = leadingCode(why) ?? codeOf('MQTT', refusal)): undefined {
    if (this.phase >= Phase.closing) return undefined;
    const code = CONNECT_REFUSALS[refusal];
    this.#ctx.log.debug({ conn: this.id, refusal, reason: why }, 'mqtt connect refused');
    this.rare().closeReason ??= `${stableCode}: ${why}`;
    this.#ctx.hub.observer.refused('mqtt', stableCode, why, this);
    this.control(
      this.v5
        ? { cmd: 'connack', sessionPresent: false, reasonCode: code.v5, properties: { reasonString: short(why) } }
        : { cmd: 'connack', sessionPresent: false, returnCode: code.v3 },
    );
    this.end();
    return undefined;
  }

  // ---- PUBLISH (managers push; clients may not) ---------------------------------------

  private onPublish(p: IPublishPacket): Promise<void> | undefined {
    // MQTT 5 §3.3.2.3.4: our Topic Alias Maximum is 0.
    if (p.properties?.topicAlias !== undefined) throw new MqttViolation('topicAliasInvalid', 'topic aliases are not supported');
    if (this.role !== 'manager') {
      return this.refusePublish(p, 'notAuthorized', `clients may not publish; managers publish to apps/{apikey}/push`);
    }
    const id = p.messageId ?? 0;
    if (p.qos === 2 && this.#rare?.qos2Received?.has(id)) {
      // MQTT-4.3.3: a resent QoS 2 publish we already stored: acknowledge again, store once.
      // The same exchange, already counted toward our Receive Maximum.
      this.inboundAnswered();
      this.control({ cmd: 'pubrec', messageId: id });
      return undefined;
    }
    const pushTo = this.#topics.push;
    if (p.topic !== pushTo) return this.refusePublish(p, 'topicNameInvalid', `managers publish to ${pushTo}`);
    const parsed = parsePushRequest(typeof p.payload === 'string' ? Buffer.from(p.payload) : p.payload);
    if (!parsed.ok) return this.refusePublish(p, 'payloadFormatInvalid', parsed.why);
    return this.push(p, parsed.value);
  }

  /** Stores the push, then acknowledges it: durable before accepted. */
  private async push(p: IPublishPacket, req: PushRequest): Promise<void> {
    let refusal: PublishRefusal | undefined;
    let why = '';
    try {
      await this.#ctx.hub.publishAsManager(this, {
        apikey: this.#topics.apikey as ApiKey,
        target: req.target,
        event: req.event,
        data: req.data,
        ...(req.ttlSeconds !== undefined ? { ttlSeconds: req.ttlSeconds } : {}),
      });
    } catch (err) {
      if (err instanceof HubError) {
        refusal = PUBACK_BY_HUB_ERROR[err.code];
        why = err.message;
      } else {
        this.#ctx.log.warn({ err, conn: this.id }, 'mqtt push failed');
        refusal = 'unspecified';
        why = 'the push could not be stored';
      }
    }
    if (this.phase !== Phase.ready) return;
    if (refusal !== undefined) {
      this.refusePublish(p, refusal, why);
      return;
    }
    const id = p.messageId ?? 0;
    if (p.qos === 1) this.control({ cmd: 'puback', messageId: id });
    else if (p.qos === 2) {
      (this.rare().qos2Received ??= new Set()).add(id);
      this.control({ cmd: 'pubrec', messageId: id });
    }
  }

  /**
   * MQTT 5: PUBACK / PUBREC with a reason code; a client's QoS 0 publish is dropped (MQTT
   * 5 gives it no answer), a manager's ends the connection with the reason. MQTT 3.1.1
   * can only acknowledge or close (MQTT-3.3.5-2); acknowledging would claim a push we
   * did not take, so we close.
   */
  private refusePublish(p: IPublishPacket, refusal: PublishRefusal, why: string): undefined {
    this.#ctx.log.debug({ conn: this.id, role: this.role, topic: short(p.topic), reason: why }, 'mqtt publish refused');
    // Refusals that end the connection are reported once, by #reject.
    if (!this.v5 || (p.qos === 0 && this.role === 'manager')) throw new MqttViolation(refusal, why);
    this.#ctx.hub.observer.refused('mqtt', codeOf('MQTT', refusal), why, this);
    const id = p.messageId ?? 0;
    const reasonCode = PUBACK_CODES[refusal];
    const properties = this.#options.problemInfo ? { properties: { reasonString: short(why) } } : {};
    if (p.qos === 1) this.control({ cmd: 'puback', messageId: id, reasonCode, ...properties });
    // MQTT 5 §4.3.3: a PUBREC with a failure code ends the QoS 2 exchange.
    else if (p.qos === 2) this.control({ cmd: 'pubrec', messageId: id, reasonCode, ...properties });
    return undefined;
  }

  /**
   * MQTT 5 §3.3.4: a client may have at most our Receive Maximum (CONNACK) QoS 1 and 2
   * PUBLISHes unanswered (MQTT-3.3.4-7); one more is DISCONNECT 0x93 Receive Maximum
   * exceeded. Before our CONNACK the client knows only the protocol's 65,535. True when
   * the connection is closing for it.
   */
  private overReceiveMaximum(): boolean {
    const rare = this.rare();
    const limit = this.phase === Phase.ready ? this.#ctx.receiveMaximum : 0xffff;
    if (++rare.inboundUnacked <= limit) return false;
    this.reject(new MqttViolation('receiveMaximumExceeded', `more than ${limit} QoS 1 and 2 PUBLISH packets unacknowledged (Receive Maximum)`));
    return true;
  }

  /** A QoS 1 or 2 PUBLISH got its PUBACK, PUBCOMP or failing PUBREC: one less toward our Receive Maximum. */
  private inboundAnswered(): void {
    const rare = this.#rare;
    if (rare !== undefined && rare.inboundUnacked > 0) rare.inboundUnacked--;
  }

  private onPuback(p: IPubackPacket): void {
    const out = this.#out;
    const inflight = out?.inflight;
    const messageId = inflight?.get(p.messageId ?? 0);
    if (out === undefined || inflight === undefined || messageId === undefined) return; // not ours (late, or after a QoS change): nothing to do
    // Kept when empty: a connection that gets QoS 1 messages needs it again soon (until
    // the client is idle: onPingreq).
    inflight.delete(p.messageId ?? 0);
    if (messageId > out.ackCandidate) out.ackCandidate = messageId;
    this.applyAcks();
    this.drainQueue();
  }

  /**
   * The client had nothing to send for a while: a good time to drop the delivery state
   * if all of it is settled (a busy connection gets PINGREQs only when it stops talking).
   */
  private onPingreq(): void {
    // MQTT-3.12.4-1
    this.control({ cmd: 'pingresp' });
    if (this.#out?.settled === true && !this.ackScheduled) this.#out = undefined;
    admissionIdle(this);
  }

  private onPubrel(p: IPubrelPacket): void {
    const id = p.messageId ?? 0;
    const known = this.#rare?.qos2Received?.delete(id) ?? false;
    if (known) this.inboundAnswered();
    // MQTT-4.3.3: PUBCOMP either way; MQTT 5 says when the id was unknown.
    this.control(this.v5 && !known ? { cmd: 'pubcomp', messageId: id, reasonCode: PACKET_ID_NOT_FOUND } : { cmd: 'pubcomp', messageId: id });
  }

  // ---- SUBSCRIBE / UNSUBSCRIBE -------------------------------------------------------

  private onSubscribe(p: ISubscribePacket): Promise<void> | undefined {
    const owner = { apikey: this.#topics.apikey, clientId: this.clientId };
    const granted: number[] = [];
    const tags: { readonly index: number; readonly tag: string; readonly filter: string; readonly qos: DeliveryQos }[] = [];
    for (const sub of p.subscriptions) {
      const kind = classifyFilter(sub.topic, owner);
      const qos: DeliveryQos = sub.qos === 0 ? 0 : 1; // QoS 2 requested → 1 granted
      switch (kind.kind) {
        case 'forbidden':
          this.#ctx.log.debug({ conn: this.id, filter: short(sub.topic), reason: kind.why }, 'mqtt subscription refused');
          granted.push(this.subackFailure('notAuthorized'));
          break;
        case 'presence':
          // Presence events go out at QoS 0.
          this.setPlainSub('presence', 0);
          granted.push(0);
          break;
        case 'all':
        case 'own':
          this.setPlainSub(kind.kind, qos);
          granted.push(qos);
          break;
        case 'tag':
          tags.push({ index: granted.length, tag: kind.tag, filter: sub.topic, qos });
          granted.push(qos);
          break;
        default:
          assertNever(kind);
      }
    }
    if (tags.length === 0) {
      this.subscriptionsChanged();
      this.control({ cmd: 'suback', messageId: p.messageId ?? 0, granted });
      return undefined;
    }
    return this.subscribeTags(p, granted, tags);
  }

  private async subscribeTags(
    p: ISubscribePacket,
    granted: number[],
    tags: readonly { readonly index: number; readonly tag: string; readonly filter: string; readonly qos: DeliveryQos }[],
  ): Promise<void> {
    try {
      await this.#ctx.hub.subscribeTags(
        this,
        tags.map((t) => t.tag),
      );
      const subscribed = (this.#tags ??= new Map());
      for (const t of tags) {
        const sub = subscribed.get(t.tag);
        // A filter naming a tag is the tag's topic (classifyFilter): kept as it came.
        if (sub === undefined) subscribed.set(t.tag, { topic: t.filter, qos: t.qos });
        else sub.qos = t.qos;
      }
    } catch (err) {
      const failure = this.hubFailure(err, 'mqtt tag subscribe failed');
      for (const t of tags) granted[t.index] = this.subackFailure(failure);
    }
    if (this.phase !== Phase.ready) return;
    this.subscriptionsChanged();
    this.control({ cmd: 'suback', messageId: p.messageId ?? 0, granted });
  }

  private onUnsubscribe(p: IUnsubscribePacket): Promise<void> | undefined {
    const owner = { apikey: this.#topics.apikey, clientId: this.clientId };
    const codes: number[] = [];
    const tags: { readonly index: number; readonly tag: string; readonly filter: string }[] = [];
    for (const filter of p.unsubscriptions) {
      const kind = classifyFilter(filter, owner);
      if (kind.kind === 'forbidden') codes.push(UNSUBACK_CODES.notAuthorized);
      else if (kind.kind === 'tag') {
        // Tags outlive connections: unsubscribe at the hub even if this connection never subscribed.
        tags.push({ index: codes.length, tag: kind.tag, filter });
        codes.push(UNSUBACK_CODES.success);
      } else codes.push(this.clearPlainSub(kind.kind) ? UNSUBACK_CODES.success : UNSUBACK_CODES.noSubscriptionExisted);
    }
    if (tags.length === 0) {
      this.subscriptionsChanged();
      this.control({ cmd: 'unsuback', messageId: p.messageId ?? 0, granted: codes });
      return undefined;
    }
    return this.unsubscribeTags(p, codes, tags);
  }

  private async unsubscribeTags(
    p: IUnsubscribePacket,
    codes: number[],
    tags: readonly { readonly index: number; readonly tag: string; readonly filter: string }[],
  ): Promise<void> {
    try {
      await this.#ctx.hub.unsubscribeTags(
        this,
        tags.map((t) => t.tag),
      );
      for (const t of tags) this.#tags?.delete(t.tag);
      if (this.#tags?.size === 0) this.#tags = undefined;
    } catch (err) {
      const failure = this.hubFailure(err, 'mqtt tag unsubscribe failed');
      for (const t of tags) codes[t.index] = UNSUBACK_CODES[failure];
    }
    if (this.phase !== Phase.ready) return;
    this.subscriptionsChanged();
    // MQTT 3.1.1 UNSUBACK carries no codes; mqtt-packet writes them for MQTT 5 only.
    this.control({ cmd: 'unsuback', messageId: p.messageId ?? 0, granted: codes });
  }

  /** Delivery QoS: the highest granted on any subscription; 1 with none, so sessions get acks. */
  private subscriptionsChanged(): void {
    let qos: DeliveryQos | undefined;
    for (const shift of Object.values(PLAIN_SUB_SHIFT)) {
      const granted = (this.plainSubs >> shift) & 3;
      if (granted !== 0 && (qos === undefined || granted - 1 > qos)) qos = (granted - 1) as DeliveryQos;
    }
    if (this.#tags !== undefined) for (const t of this.#tags.values()) if (qos === undefined || t.qos > qos) qos = t.qos;
    this.deliveryQos = qos ?? 1;
  }

  private setPlainSub(which: PlainSub, qos: DeliveryQos): void {
    const shift = PLAIN_SUB_SHIFT[which];
    this.plainSubs = withBits(this.plainSubs, shift, 3, qos + 1);
  }

  /** False when there was no such subscription. */
  private clearPlainSub(which: PlainSub): boolean {
    const shift = PLAIN_SUB_SHIFT[which];
    const had = ((this.plainSubs >> shift) & 3) !== 0;
    this.plainSubs &= ~(3 << shift);
    return had;
  }

  private subackFailure(failure: keyof typeof SUBACK_FAILURES): number {
    const code = SUBACK_FAILURES[failure];
    return this.v5 ? code.v5 : code.v3;
  }

  private hubFailure(err: unknown, what: string): 'topicFilterInvalid' | 'unspecified' {
    if (err instanceof HubError) {
      this.#ctx.log.debug({ conn: this.id, code: err.code, reason: err.message }, what);
      return err.code === 'BAD_REQUEST' ? 'topicFilterInvalid' : 'unspecified';
    }
    this.#ctx.log.warn({ err, conn: this.id }, what);
    return 'unspecified';
  }
}

/** MQTT-2.3.1-1/2: 1..65535, wrapping, never one still in flight. */
function allocatePacketId(out: Outbound): number {
  let id = out.nextPacketId;
  const inflight = out.inflight;
  if (inflight !== undefined) while (inflight.has(id)) id = id === 0xffff ? 1 : id + 1;
  out.nextPacketId = id === 0xffff ? 1 : id + 1;
  return id;
}

function short(s: string): string {
  return s.length > MAX_REASON_CHARS ? `${s.slice(0, MAX_REASON_CHARS - 3)}...` : s;
}

function assertNever(x: never): never {
  throw new Error(`unexpected value ${String(x)}`);
}
