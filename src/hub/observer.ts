import { performance } from 'node:perf_hooks';
import type { ApiKey, ClientId } from '../ids.js';
import type { Storage } from '../store/store.js';
import type { Bus, BusEvent } from '../bus/bus.js';
import type { Connection, ConnectorName } from './connection.js';

/** Who a connection entered as (the hub's member, seen through this narrow type). */
export interface EnteredAs {
  readonly role: 'client' | 'manager';
  readonly apikey: ApiKey;
  readonly clientId?: ClientId | undefined;
}

/**
 * A refusal: something a peer asked for was answered "no" with a stable code
 * (`AUTH_FAILED`, `PROTO_BAD_JSON`, `LIMIT_CONNECT_RATE`, …).
 */
export interface Refusal {
  readonly connector: ConnectorName;
  readonly code: string;
  /** The human-readable reason sent to the peer; never carries a secret. */
  readonly message: string;
  /** Absent when the refusal came before a connection existed (an upgrade refused, a limit). */
  readonly conn?: Connection | undefined;
  readonly remoteAddress?: string | undefined;
  /** Known when the refused connection had entered. */
  readonly as?: EnteredAs | undefined;
}

/** Operations of the backing services that are timed (label values of the store histogram). */
export type StoreOperation = string;

/**
 * What the hub and the connectors report about their work: connection lifecycle,
 * refusals, messages, writes and the latency of the store and the bus. Metrics
 * (src/api/metrics.ts) and the connection log (src/log.ts) implement it.
 *
 * Calls are synchronous and must be cheap: `delivered` runs once per message per node
 * (a delivery batch, not per recipient) and `wrote` once per socket write, so an
 * implementation only bumps numbers there. Nothing here may throw into the caller.
 */
export interface HubObserver {
  /** A transport connection was accepted (before any handshake). Once per connection. */
  opened(conn: Connection): void;
  /** The connection entered its app. At most once per connection. */
  entered(conn: Connection, as: EnteredAs): void;
  /** The hub forgot an entered connection (closed, or replaced by a newer one). Once per `entered`. */
  left(conn: Connection, as: EnteredAs): void;
  /** The transport closed. Once per `opened`; `as` when it had entered. */
  closed(conn: Connection, reason: string, as: EnteredAs | undefined): void;
  refused(refusal: Refusal): void;
  /** A message was stored (accepted) through this node. */
  accepted(apikey: ApiKey): void;
  /**
   * Messages went out to this node's connections: `writes` socket writes. Live fan-out
   * reports once per message with `createdAt` (when it was accepted, ms since the epoch)
   * for the fan-out latency; replays from the store pass undefined (their age is not a
   * latency).
   */
  delivered(apikey: ApiKey, writes: number, createdAt: number | undefined): void;
  /** A client acked (one cumulative ack that moved its position). */
  acked(apikey: ApiKey): void;
  /** The expiry sweep deleted this many messages. */
  expired(count: number): void;
  /** A connection was closed for reading too slowly. */
  slowConsumer(connector: ConnectorName): void;
  /** Bytes handed to a connection's transport. */
  wrote(connector: ConnectorName, bytes: number): void;
  /** One store call, its duration in seconds; `ok` false when it rejected. */
  storeCall(operation: StoreOperation, seconds: number, ok: boolean): void;
  /** A message published on this node came back from the bus after this many seconds. */
  busRoundTrip(seconds: number): void;
}

/**
 * The observer the hub holds and the connectors call: fans every report out to the
 * sinks, and remembers who each connection entered as, so that `closed` (reported by a
 * connector, which only knows the reason) and `refused` carry the app and client.
 * With no sinks it does nothing: the no-op default.
 */
export class Observers {
  readonly #sinks: readonly HubObserver[];

  constructor(sinks: readonly HubObserver[] = []) {
    this.#sinks = sinks;
  }

  opened(conn: Connection): void {
    for (const s of this.#sinks) guard(() => s.opened(conn));
  }

  entered(conn: Connection, as: EnteredAs): void {
    // Remembered on the connection (its `enteredAs` slot), not in a WeakMap: `closed` and
    // `refused` name the app and client, and a replaced member is gone from the hub by then.
    conn.enteredAs = as;
    for (const s of this.#sinks) guard(() => s.entered(conn, as));
  }

  left(conn: Connection, as: EnteredAs): void {
    for (const s of this.#sinks) guard(() => s.left(conn, as));
  }

  closed(conn: Connection, reason: string): void {
    const as = conn.enteredAs;
    for (const s of this.#sinks) guard(() => s.closed(conn, reason, as));
  }

  /** `code` is the stable refusal code; `message` what the peer was told. */
  refused(connector: ConnectorName, code: string, message: string, conn?: Connection, remoteAddress?: string): void {
    const refusal: Refusal = {
      connector,
      code,
      message,
      conn,
      remoteAddress: remoteAddress ?? conn?.remoteAddress,
      as: conn?.enteredAs,
    };
    for (const s of this.#sinks) guard(() => s.refused(refusal));
  }

  accepted(apikey: ApiKey): void {
    for (const s of this.#sinks) s.accepted(apikey);
  }

  delivered(apikey: ApiKey, writes: number, createdAt: number | undefined): void {
    for (const s of this.#sinks) s.delivered(apikey, writes, createdAt);
  }

  acked(apikey: ApiKey): void {
    for (const s of this.#sinks) s.acked(apikey);
  }

  expired(count: number): void {
    for (const s of this.#sinks) s.expired(count);
  }

  slowConsumer(connector: ConnectorName): void {
    for (const s of this.#sinks) s.slowConsumer(connector);
  }

  wrote(connector: ConnectorName, bytes: number): void {
    for (const s of this.#sinks) s.wrote(connector, bytes);
  }

  storeCall(operation: StoreOperation, seconds: number, ok: boolean): void {
    for (const s of this.#sinks) s.storeCall(operation, seconds, ok);
  }

  busRoundTrip(seconds: number): void {
    for (const s of this.#sinks) s.busRoundTrip(seconds);
  }
}

/** What connectors report as the close reason when the peer closed (or the network dropped) first. */
export const PEER_CLOSED = 'peer closed';

/** The `CODE` of a `CODE: message` reason (protocol errors, limits), if it has one. */
export function leadingCode(reason: string): string | undefined {
  return /^([A-Z][A-Z0-9_]{1,63}):/.exec(reason)?.[1];
}

/** A protocol's own camelCase reason name as a code: `codeOf('MQTT', 'badCredentials')` is `MQTT_BAD_CREDENTIALS`. */
export function codeOf(prefix: string, name: string): string {
  return `${prefix}_${name.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()}`;
}

/** The default: reports go nowhere. */
export const NO_OBSERVERS = new Observers();

// A broken sink (a log stream that throws) must never break a connection's close path.
function guard(report: () => void): void {
  try {
    report();
  } catch {
    // Nothing to do: telemetry is best effort, the connection's own work goes on.
  }
}

const STORE_PARTS = ['apps', 'admins', 'messages', 'clients'] as const;

/**
 * The storage with every asynchronous call timed (`messages.append`, `clients.touch`,
 * …): one `storeCall` per call. The operation names are the interface's method names,
 * a fixed set, so they make bounded metric labels.
 */
export function observeStorage(storage: Storage, observers: Observers): Storage {
  const parts = new Map<PropertyKey, unknown>();
  for (const part of STORE_PARTS) parts.set(part, timedMethods(storage[part], part, observers));
  return proxyBound(storage, (prop) => parts.get(prop));
}

function timedMethods<T extends object>(target: T, prefix: string, observers: Observers): T {
  return proxyBound(target, (_prop, value, name) => {
    if (typeof value !== 'function') return undefined;
    const operation = `${prefix}.${name}`;
    return (...args: unknown[]): unknown => {
      const start = performance.now();
      const result: unknown = Reflect.apply(value, target, args);
      if (!(result instanceof Promise)) return result;
      return result.then(
        (v: unknown) => {
          observers.storeCall(operation, (performance.now() - start) / 1000, true);
          return v;
        },
        (err: unknown) => {
          observers.storeCall(operation, (performance.now() - start) / 1000, false);
          throw err;
        },
      );
    };
  });
}

/**
 * A proxy whose methods run with the target as `this` (implementations keep state in
 * `#private` fields, which a proxy receiver cannot reach); `override` may replace a
 * property's value, once: results are cached per property.
 */
function proxyBound<T extends object>(target: T, override: (prop: PropertyKey, value: unknown, name: string) => unknown): T {
  const cache = new Map<PropertyKey, unknown>();
  return new Proxy(target, {
    get(t, prop) {
      if (cache.has(prop)) return cache.get(prop);
      const value: unknown = Reflect.get(t, prop, t);
      let out = override(prop, value, String(prop));
      if (out === undefined) out = typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(t) : value;
      if (typeof value === 'function' || out !== value) cache.set(prop, out);
      return out;
    },
  });
}

/** Messages published here and not yet back from the bus, at most; past it the oldest are forgotten. */
const MAX_IN_FLIGHT = 10_000;

/**
 * The bus with the round trip of this node's messages timed: from `publish` until the
 * subscription hands the same message back (immediate on the in-process bus; a Redis
 * round trip in a cluster). Messages from other nodes are not timed here.
 */
export function observeBus(bus: Bus, observers: Observers): Bus {
  const inFlight = new Map<string, number>();
  const key = (event: BusEvent): string | undefined => (event.kind === 'message' ? `${event.msg.apikey}\u0000${event.msg.id}` : undefined);
  return {
    publish(event) {
      const k = key(event);
      if (k !== undefined) {
        if (inFlight.size >= MAX_IN_FLIGHT) {
          const oldest = inFlight.keys().next();
          if (oldest.done !== true) inFlight.delete(oldest.value);
        }
        inFlight.set(k, performance.now());
      }
      return bus.publish(event);
    },
    subscribe(handler) {
      bus.subscribe((event) => {
        const k = key(event);
        const start = k === undefined ? undefined : inFlight.get(k);
        if (k !== undefined && start !== undefined) {
          inFlight.delete(k);
          observers.busRoundTrip((performance.now() - start) / 1000);
        }
        handler(event);
      });
    },
    onResubscribed(handler) {
      bus.onResubscribed(handler);
    },
    close() {
      inFlight.clear();
      return bus.close();
    },
  };
}
