import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { z } from 'zod';
import { LOG_LEVELS } from './log.js';
import { parseAddressRange } from './address-ranges.js';

const port = z.number().int().min(0).max(65535);

/** Every setting, with its default. Ports of 0 pick a free port (tests). */
export const ConfigSchema = z
  .object({
    /** Folder of the SQLite database (`shaddock.db`). */
    dataDir: z.string().min(1).default('./data'),
    /** Address every listener binds to. */
    host: z.string().min(1).default('0.0.0.0'),
    httpPort: port.default(3001),
    hybridPort: port.default(3011),
    /** socket.io connector (the seed's `sio-connector`). */
    sioPort: port.default(3010),
    /**
     * MQTT port. Unset: 1883, and when 1883 is taken (say by a local Mosquitto) Shaddock
     * starts without MQTT and says so. Set explicitly: a taken port is a fatal error.
     */
    mqttPort: port.optional(),
    /** ntfy port (docs/ntfy.md). Unset: 2586, skipped with a notice when taken; set explicitly: a taken port is fatal. */
    ntfyPort: port.optional(),
    /** The app whose tags are ntfy's topics; unset: the app named `ntfy`, created on first start. */
    ntfyApp: z.string().min(1).max(200).optional(),
    /** What requests without credentials may do on the ntfy port (ntfy's auth-default-access). */
    ntfyAnonymousAccess: z.enum(['read-write', 'read-only', 'write-only', 'deny']).default('read-write'),
    /** Whether client tokens may publish on the ntfy port (they may always subscribe). */
    ntfyTokensCanPublish: z.preprocess((v) => (v === 'true' ? true : v === 'false' ? false : v), z.boolean()).default(false),
    /** Largest ntfy message body, bytes (ntfy's message-size-limit); larger ones are refused with 413. */
    ntfyMaxMessageBytes: z.number().int().min(64).max(1024 * 1024).default(4096),
    /** The ntfy port's public URL (ntfy's base-url): Matrix push keys must start with it. */
    ntfyBaseUrl: z.string().regex(/^https?:\/\//, 'must be an http:// or https:// URL').optional(),
    /** Seconds between keepalive events on ntfy streams (ntfy's keepalive-interval). */
    ntfyKeepaliveSeconds: z.number().int().min(1).max(3600).default(45),
    logLevel: z.enum(LOG_LEVELS).default('info'),
    /** One info line per connection opened, entered, closed and per refusal; false: at debug (docs/operations.md#logs). */
    logConnections: z.preprocess((v) => (v === 'true' ? true : v === 'false' ? false : v), z.boolean()).default(true),
    /** When set, GET /metrics needs `Authorization: Bearer <token>`; open when unset (docs/operations.md#metrics). */
    metricsToken: z.string().min(16, 'must be at least 16 characters').max(1000).optional(),
    /** Cluster mode: store, bus and presence on this Redis (`redis://host:port`); SQLite when unset. */
    redisUrl: z.string().regex(/^rediss?:\/\//, 'must be a redis:// or rediss:// URL').optional(),
    /** Prefix of every Redis key and channel, so several clusters (or test runs) share one Redis. */
    redisPrefix: z.string().min(1).max(100).default('shaddock:'),
    /** This node's name in the cluster; default: hostname and pid. */
    nodeId: z.string().min(1).max(100).optional(),
    /**
     * Cluster: a node silent this long is dead, and its clients leave managers' lists and
     * the presence (it beats every fifth of this, at most every 2 s), seconds.
     */
    nodeTimeoutSeconds: z.number().min(1).max(3600).default(15),
    /** Pomelo heartbeat interval sent in the handshake, seconds. */
    heartbeatSeconds: z.number().int().min(1).max(3600).default(25),
    /** A peer silent this long after our last heartbeat is closed; default 2 × heartbeat. */
    heartbeatTimeoutSeconds: z.number().int().min(1).max(7200).optional(),
    /** Time a new connection has to complete the handshake, seconds. */
    handshakeTimeoutSeconds: z.number().int().min(1).max(600).default(10),
    /** Largest Pomelo package body accepted from a client, bytes. */
    maxPackageBytes: z.number().int().min(64).max(0xffffff).default(256 * 1024),
    /** Largest HTTP request body, bytes. */
    maxHttpBodyBytes: z.number().int().min(1024).max(64 * 1024 * 1024).default(1024 * 1024),
    /** Per-connection cap on bytes waiting to be written; past it: "slow consumer". */
    maxBufferedBytes: z.number().int().min(1024).default(4 * 1024 * 1024),
    /** Default message time to live for new apps, seconds. */
    defaultMessageTtlSeconds: z.number().int().min(1).default(86400),
    /** Password of the `admin` account created on first start; generated when absent. */
    adminPassword: z.string().min(8).optional(),
    /** Pomelo protobuf protos (paths to serverProtos.json / clientProtos.json); JSON bodies when absent. */
    serverProtosFile: z.string().optional(),
    clientProtosFile: z.string().optional(),
    /** Extra routes for the Pomelo route dictionary (e.g. push events like onMsg), compressed on the wire. */
    dictionaryRoutes: z.array(z.string().min(1).max(255)).default([]),
    // TLS (docs/tls.md): when a certificate and key are set, every listener speaks TLS only.
    /** PEM certificate (a full chain is best, e.g. Let's Encrypt fullchain.pem); needs tlsKeyFile. */
    tlsCertFile: z.string().min(1).optional(),
    /** PEM private key of tlsCertFile. */
    tlsKeyFile: z.string().min(1).optional(),
    /** PEM intermediate certificates sent with tlsCertFile when that file holds only the leaf. */
    tlsCaFile: z.string().min(1).optional(),
    // Limits (docs/security.md#limits). 0 turns a limit off.
    /** Client connections one app may hold on this node; 0: no limit. */
    maxConnectionsPerApp: z.number().int().min(0).default(0),
    /** Open connections from one source address (IPv6: one /64), all connectors together. */
    maxConnectionsPerIp: z.number().int().min(0).default(1000),
    /** New connections per second from one source address, with bursts of twice that. */
    connectsPerSecondPerIp: z.number().min(0).default(20),
    /** Inbound requests (frames, packets) per second on one connection, bursts of twice that; acks are not counted. */
    requestsPerSecond: z.number().min(0).default(100),
    /** Connections on this node that have not entered yet (handshake or enter pending). */
    maxPendingConnections: z.number().int().min(0).default(10_000),
    /** Tags one client may subscribe to (the store keeps at most 256). */
    maxTagsPerClient: z.number().int().min(1).max(256).default(256),
    /**
     * Source addresses and CIDR ranges (`10.0.0.0/8`, `::1/128`) the per-address and
     * per-connection rate limits skip (a local proxy, load tests). An empty list
     * (`SHADDOCK_LIMITS_EXEMPT_IPS=`) exempts nothing.
     */
    limitsExemptIps: z
      .preprocess(
        (v) => (typeof v === 'string' ? v.split(',').map((s) => s.trim()).filter((s) => s !== '') : v),
        z.array(
          z
            .string()
            .min(1)
            .max(64)
            .superRefine((entry, ctx) => {
              const range = parseAddressRange(entry);
              if (typeof range === 'string') ctx.addIssue({ code: z.ZodIssueCode.custom, message: range });
            }),
        ),
      )
      .default(['127.0.0.1', '::1']),
    /**
     * The process's open-files limit, when it cannot be read from the system
     * (`/proc/self/limits`, Linux) or should be taken as lower; unset: the system's.
     */
    openFilesLimit: z.number().int().min(64).optional(),
    /**
     * File descriptors kept back from client connections, so that `/healthz`, `/metrics`
     * and admin login on the HTTP port still answer when clients take the rest (at most a
     * quarter of the limit); 0: no reserve, no descriptor check.
     */
    descriptorReserve: z.number().int().min(0).default(128),
    /** An HTTP connection idle this long after an answer is closed (HTTP port and socket.io port), seconds. */
    httpKeepAliveSeconds: z.number().min(1).max(600).default(5),
    /** Time an HTTP request has to arrive whole (headers: handshakeTimeoutSeconds), seconds. */
    httpRequestTimeoutSeconds: z.number().min(1).max(3600).default(30),
    /** Failed admin logins (console, Basic auth, manager enter) per minute, per address and per username, before 429. */
    loginFailuresPerMinute: z.number().int().min(0).default(10),
  })
  .strict();

export type Config = Readonly<z.infer<typeof ConfigSchema>>;
export type ConfigInput = z.input<typeof ConfigSchema>;

/** Environment variable → config key. Values are parsed by the key's type. */
const ENV: Readonly<Record<string, keyof ConfigInput>> = {
  SHADDOCK_DATA: 'dataDir',
  SHADDOCK_HOST: 'host',
  SHADDOCK_HTTP_PORT: 'httpPort',
  SHADDOCK_HYBRID_PORT: 'hybridPort',
  SHADDOCK_SIO_PORT: 'sioPort',
  SHADDOCK_MQTT_PORT: 'mqttPort',
  SHADDOCK_NTFY_PORT: 'ntfyPort',
  SHADDOCK_NTFY_APP: 'ntfyApp',
  SHADDOCK_NTFY_ANONYMOUS_ACCESS: 'ntfyAnonymousAccess',
  SHADDOCK_NTFY_TOKENS_CAN_PUBLISH: 'ntfyTokensCanPublish',
  SHADDOCK_NTFY_MAX_MESSAGE_BYTES: 'ntfyMaxMessageBytes',
  SHADDOCK_NTFY_BASE_URL: 'ntfyBaseUrl',
  SHADDOCK_NTFY_KEEPALIVE: 'ntfyKeepaliveSeconds',
  SHADDOCK_LOG_LEVEL: 'logLevel',
  SHADDOCK_LOG_CONNECTIONS: 'logConnections',
  SHADDOCK_METRICS_TOKEN: 'metricsToken',
  SHADDOCK_REDIS_URL: 'redisUrl',
  SHADDOCK_REDIS_PREFIX: 'redisPrefix',
  SHADDOCK_NODE_ID: 'nodeId',
  SHADDOCK_NODE_TIMEOUT: 'nodeTimeoutSeconds',
  SHADDOCK_HEARTBEAT: 'heartbeatSeconds',
  SHADDOCK_ADMIN_PASSWORD: 'adminPassword',
  SHADDOCK_MAX_PACKAGE_BYTES: 'maxPackageBytes',
  SHADDOCK_MAX_BUFFERED_BYTES: 'maxBufferedBytes',
  SHADDOCK_TLS_CERT: 'tlsCertFile',
  SHADDOCK_TLS_KEY: 'tlsKeyFile',
  SHADDOCK_TLS_CA: 'tlsCaFile',
  SHADDOCK_MAX_HTTP_BODY_BYTES: 'maxHttpBodyBytes',
  SHADDOCK_HANDSHAKE_TIMEOUT: 'handshakeTimeoutSeconds',
  SHADDOCK_MAX_CONNECTIONS_PER_APP: 'maxConnectionsPerApp',
  SHADDOCK_MAX_CONNECTIONS_PER_IP: 'maxConnectionsPerIp',
  SHADDOCK_CONNECTS_PER_SECOND_PER_IP: 'connectsPerSecondPerIp',
  SHADDOCK_REQUESTS_PER_SECOND: 'requestsPerSecond',
  SHADDOCK_MAX_PENDING_CONNECTIONS: 'maxPendingConnections',
  SHADDOCK_MAX_TAGS_PER_CLIENT: 'maxTagsPerClient',
  SHADDOCK_LIMITS_EXEMPT_IPS: 'limitsExemptIps',
  SHADDOCK_LOGIN_FAILURES_PER_MINUTE: 'loginFailuresPerMinute',
  SHADDOCK_OPEN_FILES_LIMIT: 'openFilesLimit',
  SHADDOCK_DESCRIPTOR_RESERVE: 'descriptorReserve',
  SHADDOCK_HTTP_KEEP_ALIVE: 'httpKeepAliveSeconds',
  SHADDOCK_HTTP_REQUEST_TIMEOUT: 'httpRequestTimeoutSeconds',
};

/** Variables whose empty value means something (an empty list), not "unset". */
const EMPTY_MEANS_NONE = new Set<string>(['SHADDOCK_LIMITS_EXEMPT_IPS']);

const NUMERIC_KEYS = new Set<string>([
  'nodeTimeoutSeconds',
  'httpPort',
  'hybridPort',
  'sioPort',
  'mqttPort',
  'ntfyPort',
  'ntfyMaxMessageBytes',
  'ntfyKeepaliveSeconds',
  'heartbeatSeconds',
  'heartbeatTimeoutSeconds',
  'handshakeTimeoutSeconds',
  'maxPackageBytes',
  'maxHttpBodyBytes',
  'maxBufferedBytes',
  'defaultMessageTtlSeconds',
  'maxConnectionsPerApp',
  'maxConnectionsPerIp',
  'connectsPerSecondPerIp',
  'requestsPerSecond',
  'maxPendingConnections',
  'maxTagsPerClient',
  'loginFailuresPerMinute',
  'openFilesLimit',
  'descriptorReserve',
  'httpKeepAliveSeconds',
  'httpRequestTimeoutSeconds',
]);

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  readonly code = 'CONFIG_INVALID';
}

/**
 * Loads the configuration once: defaults, then the config file (`--config` or
 * `SHADDOCK_CONFIG`, JSON), then the environment, then command-line flags.
 * Validates everything and returns a frozen object.
 */
export function loadConfig(opts: {
  readonly flags?: Partial<Record<keyof ConfigInput, unknown>>;
  readonly env?: NodeJS.ProcessEnv;
  readonly configFile?: string;
}): Config {
  const env = opts.env ?? process.env;
  const merged: Record<string, unknown> = {};
  const file = opts.configFile ?? env['SHADDOCK_CONFIG'];
  if (file !== undefined && file !== '') Object.assign(merged, readConfigFile(file));
  for (const [name, key] of Object.entries(ENV)) {
    const value = env[name];
    if (value !== undefined && (value !== '' || EMPTY_MEANS_NONE.has(name))) merged[key] = coerce(key, value, name);
  }
  for (const [key, value] of Object.entries(opts.flags ?? {})) {
    if (value !== undefined) merged[key] = typeof value === 'string' ? coerce(key, value, `--${kebab(key)}`) : value;
  }
  const parsed = ConfigSchema.safeParse(merged);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue?.path.join('.') ?? '';
    throw new ConfigError(`invalid configuration${where ? ` "${where}"` : ''}: ${issue?.message ?? 'unknown problem'}`);
  }
  const tls = parsed.data;
  if ((tls.tlsCertFile === undefined) !== (tls.tlsKeyFile === undefined) || (tls.tlsCaFile !== undefined && tls.tlsCertFile === undefined)) {
    throw new ConfigError('invalid configuration: TLS needs both tlsCertFile and tlsKeyFile (SHADDOCK_TLS_CERT, SHADDOCK_TLS_KEY); tlsCaFile only adds to them');
  }
  return Object.freeze(parsed.data);
}

export function databasePath(config: Config): string {
  return resolve(config.dataDir, 'shaddock.db');
}

export const DEFAULT_MQTT_PORT = 1883;
/** ntfy's usual port in self-hosted setups that do not use 80 (its docs' examples). */
export const DEFAULT_NTFY_PORT = 2586;

export function heartbeatTimeoutSeconds(config: Config): number {
  return config.heartbeatTimeoutSeconds ?? config.heartbeatSeconds * 2;
}

function readConfigFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read config file ${path}: ${(err as Error).message}`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`config file ${path} is not valid JSON: ${(err as Error).message}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ConfigError(`config file ${path} must hold a JSON object`);
  }
  return value as Record<string, unknown>;
}

function coerce(key: string, value: string, source: string): unknown {
  if (!NUMERIC_KEYS.has(key)) return value;
  const n = Number(value);
  if (!Number.isFinite(n) || value.trim() === '') throw new ConfigError(`${source} must be a number, got "${value}"`);
  return n;
}

function kebab(key: string): string {
  return key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}
