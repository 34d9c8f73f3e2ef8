import { LinkedSet } from '../linked-set.js';
import type { Server, Socket } from 'node:net';
import type { Logger } from '../../log.js';
import type { Hub } from '../../hub/hub.js';
import { CLOSE_REASONS } from '../../hub/connection.js';
import { DeadlineWheel } from '../deadline-wheel.js';
import { closeServer, createSocketServer, listen, peerAddress, type TlsListenOptions } from '../listen.js';
import { MqttEncoder } from './mqtt-encoder.js';
import { CLOSE_GRACE_MS, MqttConnection } from './mqtt-connection.js';
import type { MqttContext } from './mqtt-context.js';
import { LimitError, type Admission, type AdmissionTicket } from '../admission.js';

export interface MqttConnectorOptions {
  readonly hub: Hub;
  readonly log: Logger;
  readonly host: string;
  /** 0 picks a free port. */
  readonly port: number;
  /**
   * Largest packet accepted from a peer, whole packet (fixed header included), bytes.
   * MQTT 5 clients are told it in CONNACK (Maximum Packet Size).
   */
  readonly maxPacketBytes: number;
  /**
   * QoS 1 and 2 PUBLISHes an MQTT 5 client (a manager pushing) may have unacknowledged,
   * 1–65535, told in CONNACK (Receive Maximum); one more closes it with DISCONNECT 0x93.
   * @default 256
   */
  readonly receiveMaximum?: number;
  /** Time a new socket has to send CONNECT, and to be let in, ms. @default 10000 */
  readonly connectTimeoutMs?: number;
  /** Serve MQTT over TLS only (mqtts, docs/tls.md); the CONNECT deadline starts after the TLS handshake. */
  readonly tls?: TlsListenOptions | undefined;
  /** Connection limits shared by every connector (docs/security.md#limits); none when absent. */
  readonly admission?: Admission;
}

/**
 * Width of the deadline wheel's slots, ms: deadlines fire at most this late, so a
 * client with a 1 s keep-alive that goes silent is closed within 2 s.
 */
const WHEEL_RESOLUTION_MS = 250;
const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;
const DEFAULT_RECEIVE_MAXIMUM = 256;

/**
 * MQTT 3.1.1 and 5 over TCP or TLS (docs/connectors.md, docs/tls.md). The hub decides who gets
 * what; MQTT topics tell clients why (all, clients/{id}, tags/{tag}).
 */
export class MqttConnector {
  readonly #server: Server;
  readonly #ctx: MqttContext;
  readonly #opts: MqttConnectorOptions;
  readonly #connections = new LinkedSet<MqttConnection>();
  /** Resolves close() once the last connection is gone. */
  #onEmpty: (() => void) | undefined;
  #port = 0;

  constructor(opts: MqttConnectorOptions) {
    // MQTT 5 §3.2.2.3.3: a two-byte integer, and 0 is a protocol error.
    const receiveMaximum = opts.receiveMaximum ?? DEFAULT_RECEIVE_MAXIMUM;
    if (!Number.isInteger(receiveMaximum) || receiveMaximum < 1 || receiveMaximum > 0xffff) throw new RangeError(`receiveMaximum must be 1 to 65535, got ${receiveMaximum}`);
    this.#opts = opts;
    this.#ctx = {
      hub: opts.hub,
      log: opts.log,
      encoder: new MqttEncoder(),
      wheel: new DeadlineWheel<MqttConnection>((conn) => conn.expire(), WHEEL_RESOLUTION_MS),
      connections: this.#connections,
      closed: (conn) => {
        this.#connections.delete(conn);
        if (this.#connections.size === 0) this.#onEmpty?.();
      },
      maxPacketBytes: opts.maxPacketBytes,
      connectTimeoutMs: opts.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
      receiveMaximum,
    };
    this.#server = createSocketServer((socket) => this.#accept(socket), { tls: opts.tls, log: opts.log, name: 'mqtt', admission: opts.admission });
  }

  get port(): number {
    return this.#port;
  }

  /** Sockets open, including those that have not sent CONNECT yet. */
  get connectionCount(): number {
    return this.#connections.size;
  }

  async listen(): Promise<number> {
    this.#port = await listen(this.#server, this.#opts.host, this.#opts.port);
    this.#ctx.wheel.start();
    return this.#port;
  }

  /**
   * Stops accepting, closes every connection with the reason (MQTT 5: DISCONNECT), and
   * waits for them; a peer that has not gone after the grace period is dropped.
   */
  async close(reason: string = CLOSE_REASONS.shutdown): Promise<void> {
    const closing = closeServer(this.#server);
    // The server's close callback can run before the sockets' own 'close' events: wait for those.
    const empty = new Promise<void>((resolve) => {
      this.#onEmpty = resolve;
      if (this.#connections.size === 0) resolve();
    });
    for (const conn of [...this.#connections]) conn.close(reason);
    let timer: NodeJS.Timeout | undefined;
    const grace = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, CLOSE_GRACE_MS);
    });
    await Promise.race([empty, grace]);
    clearTimeout(timer);
    for (const conn of [...this.#connections]) conn.destroy();
    await Promise.all([empty, closing]);
    this.#onEmpty = undefined;
    this.#ctx.wheel.stop();
  }

  #accept(socket: Socket): void {
    const address = peerAddress(socket);
    let ticket: AdmissionTicket | undefined;
    let refusal: LimitError | undefined;
    try {
      ticket = this.#opts.admission?.admit(address, { listener: 'mqtt' });
    } catch (err) {
      if (!(err instanceof LimitError)) throw err;
      refusal = err;
    }
    const conn = new MqttConnection(this.#ctx, socket, ticket?.address ?? address);
    this.#connections.add(conn);
    // The connection releases its ticket when its socket closes.
    conn.admission = ticket;
    // Refused with a CONNACK, which needs the client's protocol version from its CONNECT.
    if (refusal) conn.refuseAtConnect(refusal);
  }
}
