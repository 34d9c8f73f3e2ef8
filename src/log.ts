import { pino, type DestinationStream, type Logger, type LevelWithSilent } from 'pino';
import { CLOSE_REASONS, type Connection, type ConnectorName } from './hub/connection.js';
import { PEER_CLOSED, leadingCode, type EnteredAs, type HubObserver, type Refusal } from './hub/observer.js';

export type { Logger };

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

/** Fields that may hold a secret, wherever a call site puts them: never written. */
const REDACTED_PATHS = [
  'secret',
  'password',
  'token',
  'adminPassword',
  'metricsToken',
  'authorization',
  'cookie',
  '*.secret',
  '*.password',
  '*.token',
  '*.adminPassword',
  '*.metricsToken',
  '*.authorization',
  '*.cookie',
  'req.headers.authorization',
  'req.headers.cookie',
];

/**
 * Structured logs. Secrets never reach a log line: the fields that could carry one are
 * redacted here, once, whatever the call site passes. `destination` is for tests that
 * read the lines; the default is stdout.
 */
export function createLogger(level: LevelWithSilent, destination?: DestinationStream): Logger {
  const options = {
    level,
    base: { pid: process.pid },
    redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
  };
  return destination === undefined ? pino(options) : pino(options, destination);
}

/** Stable codes of the close reasons the server gives (CLOSE_REASONS), for log lines and alerts. */
const CLOSE_CODES: Readonly<Record<string, string>> = {
  [CLOSE_REASONS.replaced]: 'REPLACED',
  [CLOSE_REASONS.slowConsumer]: 'SLOW_CONSUMER',
  [CLOSE_REASONS.shutdown]: 'SHUTDOWN',
  [CLOSE_REASONS.appDeleted]: 'APP_DELETED',
  [CLOSE_REASONS.heartbeatTimeout]: 'HEARTBEAT_TIMEOUT',
  [CLOSE_REASONS.handshakeTimeout]: 'HANDSHAKE_TIMEOUT',
  [CLOSE_REASONS.protocolError]: 'PROTO_ERROR',
  [CLOSE_REASONS.kicked]: 'KICKED',
  // Reasons given by one connector or the hub only (ws-connection.ts, hub.ts).
  'too many bad frames': 'TOO_MANY_BAD_FRAMES',
  'binary frames are not accepted': 'PROTO_BAD_MESSAGE',
  'resume failed': 'RESUME_FAILED',
};

/**
 * The stable code of a close reason: `CLIENT_CLOSED` when the peer went first, the code
 * of a known server reason, the `CODE` of a `CODE: message` reason (protocol errors and
 * limits), else `CLOSED`.
 */
export function closeCode(reason: string): string {
  if (reason === PEER_CLOSED) return 'CLIENT_CLOSED';
  const known = CLOSE_CODES[reason];
  if (known !== undefined) return known;
  return leadingCode(reason) ?? 'CLOSED';
}

/** At which level connection lifecycle and refusal lines are written. */
export type ConnectionLogLevel = 'info' | 'debug';

/**
 * One log line per connection lifecycle event and per refusal (docs/operations.md#logs):
 *
 * - `connection-opened`: a transport was accepted (conn, connector, remote);
 * - `client-entered` / `manager-entered`: it entered its app (app, clientId);
 * - `connection-closed`: it closed, with `code` (stable) and `reason`, how long it lived
 *   and, if it had entered, its app and client;
 * - `refused`: something it asked was answered no, with a stable `code`.
 *
 * Lines carry ids, never credentials: the secret, passwords and tokens a peer sent are
 * not among the fields, and the logger redacts such fields anyway.
 */
/** Refusal codes of the connection limits (src/connectors/admission.ts), reported in bulk by the limits themselves. */
const ADMISSION_CODES: ReadonlySet<string> = new Set(['LIMIT_CONNECTIONS_PER_IP', 'LIMIT_CONNECT_RATE', 'LIMIT_PENDING', 'LIMIT_DESCRIPTORS']);

export class ConnectionLog implements HubObserver {
  readonly #log: Logger;
  readonly #level: ConnectionLogLevel;

  constructor(log: Logger, level: ConnectionLogLevel) {
    this.#log = log.child({ component: 'connections' });
    this.#level = level;
  }

  opened(conn: Connection): void {
    if (!this.#log.isLevelEnabled(this.#level)) return;
    this.#log[this.#level]({ event: 'connection-opened', conn: conn.id, connector: conn.connector, remote: conn.remoteAddress }, 'connection opened');
  }

  entered(conn: Connection, as: EnteredAs): void {
    if (!this.#log.isLevelEnabled(this.#level)) return;
    const event = as.role === 'client' ? 'client-entered' : 'manager-entered';
    this.#log[this.#level](
      { event, conn: conn.id, connector: conn.connector, app: as.apikey, ...(as.clientId !== undefined ? { clientId: as.clientId } : {}), remote: conn.remoteAddress },
      as.role === 'client' ? 'client entered' : 'manager entered',
    );
  }

  left(): void {
    // The `connection-closed` line says it, with the reason and who it was.
  }

  closed(conn: Connection, reason: string, as: EnteredAs | undefined): void {
    if (!this.#log.isLevelEnabled(this.#level)) return;
    this.#log[this.#level](
      {
        event: 'connection-closed',
        conn: conn.id,
        connector: conn.connector,
        code: closeCode(reason),
        reason,
        ...identity(as),
        remote: conn.remoteAddress,
        durationMs: Math.max(0, Date.now() - conn.connectedAt),
      },
      'connection closed',
    );
  }

  refused(r: Refusal): void {
    // A connection refused by the per-address, rate, pending or descriptor limits comes
    // in floods: the limits' own reporter logs those a few lines at a time (at warn,
    // src/connectors/refusal-log.ts), so the line per connection is debug only.
    const level = ADMISSION_CODES.has(r.code) ? 'debug' : this.#level;
    if (!this.#log.isLevelEnabled(level)) return;
    this.#log[level](
      {
        event: 'refused',
        ...(r.conn !== undefined ? { conn: r.conn.id } : {}),
        connector: r.connector,
        code: r.code,
        reason: r.message,
        ...identity(r.as),
        ...(r.remoteAddress !== undefined ? { remote: r.remoteAddress } : {}),
      },
      'refused',
    );
  }

  slowConsumer(_connector: ConnectorName): void {
    // The connection-closed line (code SLOW_CONSUMER) says it.
  }

  accepted(): void {}
  delivered(): void {}
  acked(): void {}
  expired(): void {}
  wrote(): void {}
  storeCall(): void {}
  busRoundTrip(): void {}
}

function identity(as: EnteredAs | undefined): Record<string, string> {
  if (as === undefined) return {};
  return as.clientId !== undefined ? { app: as.apikey, role: as.role, clientId: as.clientId } : { app: as.apikey, role: as.role };
}
