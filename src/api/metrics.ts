import type { IncomingMessage, ServerResponse } from 'node:http';
import type { FastifyInstance, RawServerDefault } from 'fastify';
import type { Logger } from '../log.js';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { safeEqual } from '../safe-equal.js';
import { ApiError } from './errors.js';
import type { ApiKey } from '../ids.js';
import { CONNECTOR_NAMES, type Connection, type ConnectorName } from '../hub/connection.js';
import { CLOSE_REASONS } from '../hub/connection.js';
import type { EnteredAs, HubObserver, Refusal } from '../hub/observer.js';

/** Every metric name starts with this (the Node.js defaults too: `shaddock_nodejs_eventloop_lag_seconds`). */
export const METRIC_PREFIX = 'shaddock_';

/** How a connection that never entered ended (handshake outcomes besides `entered`). */
const HANDSHAKE_OUTCOMES = ['entered', 'refused', 'timeout', 'abandoned'] as const;
type HandshakeOutcome = (typeof HANDSHAKE_OUTCOMES)[number];

// Fan-out: from accepted (stored) to written on this node's sockets. Sub-millisecond on
// one node with few targets; tens of ms for 10 000 targets (BENCHMARKS.md).
const FANOUT_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];
// SQLite calls take microseconds to a few ms; Redis adds a network round trip.
const STORE_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1];
const BUS_BUCKETS = [0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1];

/** A refusal code becomes a label only when it looks like one: label values stay a bounded set. */
const CODE_SHAPE = /^[A-Z][A-Z0-9_]{0,63}$/;

let processMetrics: Registry | undefined;

/**
 * The Node.js and process metrics (event-loop lag, memory, CPU, GC, file descriptors),
 * collected once per process: they describe the process, not one server, and the
 * event-loop monitor behind them keeps running once started.
 */
function processRegistry(): Registry {
  if (processMetrics === undefined) {
    processMetrics = new Registry();
    collectDefaultMetrics({ register: processMetrics, prefix: METRIC_PREFIX });
  }
  return processMetrics;
}

interface AppCounters {
  readonly accepted: Counter.Internal;
  readonly delivered: Counter.Internal;
  readonly acked: Counter.Internal;
}

/**
 * Prometheus metrics of one node (docs/operations.md lists them). One registry per
 * server, so that several servers in one process (tests) never share series.
 *
 * Hot-path reports only touch numbers: per-app counters are label children looked up
 * once per app and cached, bytes out are summed in a plain array and handed to the
 * counter when Prometheus scrapes.
 */
export class Metrics implements HubObserver {
  readonly registry = new Registry();
  readonly #connectionsOpen: Gauge<'connector'>;
  readonly #connections: Gauge<'app' | 'connector' | 'role'>;
  readonly #handshakes: Counter<'connector' | 'outcome'>;
  readonly #accepted: Counter<'app'>;
  readonly #delivered: Counter<'app'>;
  readonly #acked: Counter<'app'>;
  readonly #expired: Counter;
  readonly #fanout: Histogram;
  readonly #slow: Counter<'connector'>;
  readonly #refusals: Counter<'connector' | 'code'>;
  readonly #listenerRefusals: Counter<'listener' | 'reason'>;
  readonly #store: Histogram<'operation'>;
  readonly #storeErrors: Counter<'operation'>;
  readonly #bus: Histogram;
  readonly #apps = new Map<ApiKey, AppCounters>();
  /** Bytes written per connector since the last scrape, by CONNECTOR_NAMES index. */
  readonly #bytesPending = new Float64Array(CONNECTOR_NAMES.length);
  readonly #connectorIndex = new Map<ConnectorName, number>(CONNECTOR_NAMES.map((c, i) => [c, i]));
  /** Connections refused before they entered: their handshake ended "refused". */
  readonly #refusedBeforeEnter = new WeakSet<Connection>();

  constructor() {
    const registers = [this.registry];
    this.#connectionsOpen = new Gauge({
      name: `${METRIC_PREFIX}connections_open`,
      help: 'Transport connections open on this node, entered or not',
      labelNames: ['connector'],
      registers,
    });
    this.#connections = new Gauge({
      name: `${METRIC_PREFIX}connections`,
      help: 'Connections that entered an app on this node, by app (apikey), connector and role',
      labelNames: ['app', 'connector', 'role'],
      registers,
    });
    this.#handshakes = new Counter({
      name: `${METRIC_PREFIX}handshakes_total`,
      help: 'Connections by how their opening ended: entered, refused, timeout (no enter in time) or abandoned (closed first)',
      labelNames: ['connector', 'outcome'],
      registers,
    });
    this.#accepted = new Counter({
      name: `${METRIC_PREFIX}messages_accepted_total`,
      help: 'Messages stored (accepted) through this node',
      labelNames: ['app'],
      registers,
    });
    this.#delivered = new Counter({
      name: `${METRIC_PREFIX}messages_delivered_total`,
      help: 'Message writes to client connections on this node (live and resumed)',
      labelNames: ['app'],
      registers,
    });
    this.#acked = new Counter({
      name: `${METRIC_PREFIX}messages_acked_total`,
      help: 'Acks received on this node that moved a client position',
      labelNames: ['app'],
      registers,
    });
    this.#expired = new Counter({
      name: `${METRIC_PREFIX}messages_expired_total`,
      help: 'Messages deleted by the expiry sweep of this node (past their time to live)',
      registers,
    });
    this.#fanout = new Histogram({
      name: `${METRIC_PREFIX}fanout_seconds`,
      help: 'From a message accepted to written on every target socket of this node',
      buckets: FANOUT_BUCKETS,
      registers,
    });
    const bytesPending = this.#bytesPending;
    new Counter({
      name: `${METRIC_PREFIX}bytes_out_total`,
      help: 'Bytes handed to client transports, by connector',
      labelNames: ['connector'],
      registers,
      collect() {
        for (let i = 0; i < CONNECTOR_NAMES.length; i++) {
          this.inc({ connector: CONNECTOR_NAMES[i]! }, bytesPending[i]!);
          bytesPending[i] = 0;
        }
      },
    });
    this.#slow = new Counter({
      name: `${METRIC_PREFIX}slow_consumer_closes_total`,
      help: 'Connections closed because their unsent bytes passed maxBufferedBytes',
      labelNames: ['connector'],
      registers,
    });
    this.#refusals = new Counter({
      name: `${METRIC_PREFIX}refusals_total`,
      help: 'Requests and connections refused, by stable reason code',
      labelNames: ['connector', 'code'],
      registers,
    });
    this.#listenerRefusals = new Counter({
      name: `${METRIC_PREFIX}listener_refusals_total`,
      help: 'Connections and sessions refused at a listener (http, sio, hybrid, mqtt, …) by the limits, by reason code',
      labelNames: ['listener', 'reason'],
      registers,
    });
    this.#store = new Histogram({
      name: `${METRIC_PREFIX}store_seconds`,
      help: 'Duration of store calls (SQLite or Redis), by operation',
      labelNames: ['operation'],
      buckets: STORE_BUCKETS,
      registers,
    });
    this.#storeErrors = new Counter({
      name: `${METRIC_PREFIX}store_errors_total`,
      help: 'Store calls that failed, by operation',
      labelNames: ['operation'],
      registers,
    });
    this.#bus = new Histogram({
      name: `${METRIC_PREFIX}bus_round_trip_seconds`,
      help: 'From publishing a message on the bus to receiving it back on this node',
      buckets: BUS_BUCKETS,
      registers,
    });
    // Every connector's series exist from the start, so rates and alerts see zeros, not gaps.
    for (const connector of CONNECTOR_NAMES) {
      this.#connectionsOpen.set({ connector }, 0);
      this.#slow.inc({ connector }, 0);
      for (const outcome of HANDSHAKE_OUTCOMES) this.#handshakes.inc({ connector, outcome }, 0);
    }
    this.#expired.inc(0);
  }

  /** The text format Prometheus scrapes (this node's metrics and the process's), and its content type. */
  async render(): Promise<{ readonly contentType: string; readonly body: string }> {
    const merged = Registry.merge([processRegistry(), this.registry]);
    return { contentType: merged.contentType, body: await merged.metrics() };
  }

  opened(conn: Connection): void {
    this.#connectionsOpen.inc({ connector: conn.connector });
  }

  entered(conn: Connection, as: EnteredAs): void {
    this.#connections.inc({ app: as.apikey, connector: conn.connector, role: as.role });
    this.#handshakes.inc({ connector: conn.connector, outcome: 'entered' });
  }

  left(conn: Connection, as: EnteredAs): void {
    this.#connections.dec({ app: as.apikey, connector: conn.connector, role: as.role });
  }

  closed(conn: Connection, reason: string, as: EnteredAs | undefined): void {
    this.#connectionsOpen.dec({ connector: conn.connector });
    if (as !== undefined) return; // counted when it entered
    let outcome: HandshakeOutcome;
    if (reason === CLOSE_REASONS.handshakeTimeout) outcome = 'timeout';
    else if (this.#refusedBeforeEnter.has(conn)) outcome = 'refused';
    else outcome = 'abandoned';
    this.#handshakes.inc({ connector: conn.connector, outcome });
  }

  refused(r: Refusal): void {
    this.#refusals.inc({ connector: r.connector, code: CODE_SHAPE.test(r.code) ? r.code : 'OTHER' });
    if (r.conn !== undefined && r.as === undefined) this.#refusedBeforeEnter.add(r.conn);
  }

  /** A connection or session refused at `listener` by the limits (docs/security.md#limits). */
  listenerRefused(listener: string, reason: string): void {
    this.#listenerRefusals.inc({ listener: CODE_SHAPE.test(listener.toUpperCase()) ? listener : 'other', reason: CODE_SHAPE.test(reason) ? reason : 'OTHER' });
  }

  accepted(apikey: ApiKey): void {
    this.#app(apikey).accepted.inc();
  }

  delivered(apikey: ApiKey, writes: number, createdAt: number | undefined): void {
    if (writes > 0) this.#app(apikey).delivered.inc(writes);
    // Clocks of two nodes may disagree a little: a negative span is clamped, not dropped.
    if (createdAt !== undefined && writes > 0) this.#fanout.observe(Math.max(0, Date.now() - createdAt) / 1000);
  }

  acked(apikey: ApiKey): void {
    this.#app(apikey).acked.inc();
  }

  expired(count: number): void {
    if (count > 0) this.#expired.inc(count);
  }

  slowConsumer(connector: ConnectorName): void {
    this.#slow.inc({ connector });
  }

  wrote(connector: ConnectorName, bytes: number): void {
    const i = this.#connectorIndex.get(connector);
    if (i !== undefined) this.#bytesPending[i]! += bytes;
  }

  storeCall(operation: string, seconds: number, ok: boolean): void {
    this.#store.observe({ operation }, seconds);
    if (!ok) this.#storeErrors.inc({ operation });
  }

  busRoundTrip(seconds: number): void {
    this.#bus.observe(seconds);
  }

  #app(apikey: ApiKey): AppCounters {
    let c = this.#apps.get(apikey);
    if (c === undefined) {
      c = {
        accepted: this.#accepted.labels({ app: apikey }),
        delivered: this.#delivered.labels({ app: apikey }),
        acked: this.#acked.labels({ app: apikey }),
      };
      this.#apps.set(apikey, c);
    }
    return c;
  }
}

/**
 * `GET /metrics` in the Prometheus text format. Open when `token` is unset, as
 * Prometheus scrapes usually are (keep the HTTP port off the internet, or set one);
 * otherwise it needs `Authorization: Bearer <token>` (Prometheus: `authorization:
 * {credentials: …}` in the scrape config). docs/operations.md#metrics.
 */
export function registerMetricsRoute(app: FastifyInstance<RawServerDefault, IncomingMessage, ServerResponse, Logger>, metrics: Metrics, token: string | undefined): void {
  app.get('/metrics', async (req, reply) => {
    if (token !== undefined) {
      const header = req.headers.authorization;
      const sent = typeof header === 'string' && header.startsWith('Bearer ') ? header.slice(7) : undefined;
      if (sent === undefined || !safeEqual(sent, token)) {
        void reply.header('www-authenticate', 'Bearer realm="metrics"');
        throw new ApiError('UNAUTHORIZED', 'GET /metrics needs "Authorization: Bearer <metricsToken>"');
      }
    }
    const { contentType, body } = await metrics.render();
    return reply.header('content-type', contentType).header('cache-control', 'no-store').send(body);
  });
}
