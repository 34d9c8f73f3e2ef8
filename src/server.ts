import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { readFileSync } from 'node:fs';
import { DEFAULT_MQTT_PORT, DEFAULT_NTFY_PORT, databasePath, heartbeatTimeoutSeconds, type Config } from './config.js';
import { ConnectionLog, createLogger, type Logger } from './log.js';
import { Observers, observeBus, observeStorage } from './hub/observer.js';
import { Metrics } from './api/metrics.js';
import type { App, Storage } from './store/store.js';
import { openSqliteStorage } from './store/sqlite-storage.js';
import { openRedisStorage } from './store/redis-storage.js';
import { openRedisBus } from './bus/redis-bus.js';
import { openRedisPresence } from './presence/redis-presence.js';
import type { Bus } from './bus/bus.js';
import { LocalBus } from './bus/local-bus.js';
import { Hub } from './hub/hub.js';
import { CLOSE_REASONS } from './hub/connection.js';
import { HybridConnector } from './connectors/hybrid/hybrid-connector.js';
import { SioConnector } from './connectors/sio/sio-connector.js';
import { MqttConnector } from './connectors/mqtt/mqtt-connector.js';
import { WsConnector } from './connectors/ws/ws-connector.js';
import { SseConnector } from './connectors/sse/sse-connector.js';
import { parseProtos, type ParsedProtos } from './protocol/pomelo/protobuf.js';
import { buildHttpApi, type HttpApi } from './api/http-api.js';
import { loadTlsCredentials, type TlsListenOptions } from './tls.js';
import { LISTEN_BACKLOG, createHttpListener, reserveRefusal, type HttpTimeouts } from './connectors/listen.js';
import { LoginLimiter } from './api/sessions.js';
import { NtfyConnector } from './connectors/ntfy/ntfy-connector.js';
import type { ScheduledStore } from './store/scheduled-store.js';
import { openSqliteScheduledStore } from './store/scheduled-sqlite.js';
import { openRedisScheduledStore } from './store/scheduled-redis.js';
import type { ApiKey } from './ids.js';
import { Admission, refuseUpgrade } from './connectors/admission.js';
import { DescriptorBudget, readOpenFilesLimit } from './connectors/descriptors.js';
import { refusalReporter } from './connectors/refusal-log.js';

/**
 * What a connection on the descriptor reserve may ask (docs/security.md#file-descriptors):
 * health, metrics and the console's login — what an operator needs to see and act
 * while clients hold every other descriptor.
 */
function reservedRequest(method: string, path: string): boolean {
  if (path === '/healthz') return method === 'GET' || method === 'HEAD';
  if (path === '/metrics') return method === 'GET';
  return path === '/api/v1/session' && (method === 'POST' || method === 'GET');
}

/** What the first start created, to show the user once. */
export interface FirstStart {
  readonly adminUsername: string;
  /** Present only when we generated it (not given in config/env). */
  readonly generatedAdminPassword: string | undefined;
  readonly demoApp: App | undefined;
}

export interface ShaddockServer {
  readonly config: Config;
  /** This node's name (config nodeId, or host and pid). */
  readonly nodeId: string;
  readonly log: Logger;
  readonly storage: Storage;
  readonly hub: Hub;
  readonly http: HttpApi;
  readonly hybrid: HybridConnector;
  readonly sio: SioConnector;
  /** Undefined when the default MQTT port was taken (see `notices`). */
  readonly mqtt: MqttConnector | undefined;
  readonly ws: WsConnector;
  readonly sse: SseConnector;
  readonly httpPort: number;
  readonly hybridPort: number;
  readonly sioPort: number;
  readonly mqttPort: number | undefined;
  /** Undefined when the default ntfy port was taken (see `notices`). */
  readonly ntfy: NtfyConnector | undefined;
  readonly ntfyPort: number | undefined;
  /** The app whose tags are ntfy's topics. */
  readonly ntfyApp: App;
  /** Things the operator should know at start (a listener skipped, …). */
  readonly notices: readonly string[];
  readonly firstStart: FirstStart | undefined;
  /** Kicks every connection with a reason, stops listening, closes the database. */
  close(): Promise<void>;
  /** While close() runs: the step it waits on (for a shutdown that overstays). */
  readonly closingStep: string | undefined;
}

export const DEFAULT_ADMIN = 'admin';

/**
 * Builds a node from its config: the only module that picks implementations and
 * imports every layer.
 */
export async function startServer(
  config: Config,
  opts: {
    readonly log?: Logger;
    /** For tests: what "the default MQTT port" is. */
    readonly defaultMqttPort?: number;
    /** For tests: what "the default ntfy port" is. */
    readonly defaultNtfyPort?: number;
  } = {},
): Promise<ShaddockServer> {
  const defaultMqttPort = opts.defaultMqttPort ?? DEFAULT_MQTT_PORT;
  const defaultNtfyPort = opts.defaultNtfyPort ?? DEFAULT_NTFY_PORT;
  const log = opts.log ?? createLogger(config.logLevel);
  const nodeId = config.nodeId ?? `${hostname()}-${process.pid}`;
  // TLS first: a bad certificate path stops the start before anything is opened.
  const tlsCredentials = loadTlsCredentials(config);
  const tls: TlsListenOptions | undefined = tlsCredentials && {
    cert: tlsCredentials.cert,
    key: tlsCredentials.key,
    handshakeTimeoutMs: config.handshakeTimeoutSeconds * 1000,
  };
  const redis = config.redisUrl !== undefined ? { url: config.redisUrl, prefix: config.redisPrefix } : undefined;
  // Embedded: SQLite and an in-process bus. Cluster: both on Redis; nothing above knows which.
  // Metrics and the connection log see what the hub, connectors, store and bus report.
  const metrics = new Metrics();
  const observer = new Observers([metrics, new ConnectionLog(log, config.logConnections ? 'info' : 'debug')]);
  const storage: Storage = observeStorage(redis ? await openRedisStorage(redis) : openSqliteStorage(databasePath(config)), observer);
  const cleanup: (() => Promise<void>)[] = [() => storage.close()];
  try {
    const firstStart = await bootstrap(storage, config);
    const bus: Bus = observeBus(redis ? await openRedisBus({ ...redis, logger: log }) : new LocalBus(), observer);
    cleanup.unshift(() => bus.close());
    // Cluster: who is online where. The embedded node needs none (its hub sees everyone).
    const nodeTimeoutMs = config.nodeTimeoutSeconds * 1000;
    const presence = redis
      ? await openRedisPresence({ ...redis, logger: log, nodeId, nodeTimeoutMs, heartbeatMs: Math.min(2000, Math.floor(nodeTimeoutMs / 5)) })
      : undefined;
    if (presence) cleanup.unshift(() => presence.close());
    const notices: string[] = [];
    // Limits (docs/security.md#limits): one admission and one login limiter per node,
    // shared by every connector and the API; every listener's door checks the
    // descriptor budget and reports its refusals here.
    const openFiles = config.openFilesLimit ?? readOpenFilesLimit();
    let descriptors: DescriptorBudget | undefined;
    if (config.descriptorReserve > 0 && openFiles !== undefined) {
      descriptors = new DescriptorBudget({ limit: openFiles, reserve: config.descriptorReserve });
    } else if (config.descriptorReserve > 0) {
      const notice = 'no descriptor reserve: the open-files limit cannot be read here; set openFilesLimit (SHADDOCK_OPEN_FILES_LIMIT)';
      notices.push(notice);
      log.warn(notice);
    }
    const admission = new Admission(
      {
        maxConnectionsPerIp: config.maxConnectionsPerIp,
        connectsPerSecondPerIp: config.connectsPerSecondPerIp,
        maxPendingConnections: config.maxPendingConnections,
        requestsPerSecond: config.requestsPerSecond,
        exemptIps: config.limitsExemptIps,
      },
      Date.now,
      { descriptors, report: refusalReporter(log.child({ component: 'limits' }), (listener, code) => metrics.listenerRefused(listener, code)) },
    );
    // Explicit HTTP timeouts on both HTTP ports: a connection that sends no request in
    // time, or idles after an answer, goes (Node's own defaults are 60 s and 5 s, checked every 30 s).
    const httpTimeouts: HttpTimeouts = {
      headersMs: config.handshakeTimeoutSeconds * 1000,
      requestMs: config.httpRequestTimeoutSeconds * 1000,
      keepAliveMs: config.httpKeepAliveSeconds * 1000,
    };
    cleanup.unshift(async () => admission.close());
    const loginLimiter = new LoginLimiter(config.loginFailuresPerMinute);
    const hub = new Hub({
      storage,
      bus,
      logger: log,
      observer,
      maxBufferedBytes: config.maxBufferedBytes,
      maxConnectionsPerApp: config.maxConnectionsPerApp,
      maxTagsPerClient: config.maxTagsPerClient,
      loginGate: loginLimiter,
      ...(presence ? { cluster: { nodeId, presence, nodeCheckMs: Math.min(2000, Math.floor(nodeTimeoutMs / 5)) } } : {}),
    });

    const hybrid = new HybridConnector({
      hub,
      log,
      host: config.host,
      port: config.hybridPort,
      heartbeatSeconds: config.heartbeatSeconds,
      heartbeatTimeoutSeconds: heartbeatTimeoutSeconds(config),
      handshakeTimeoutSeconds: config.handshakeTimeoutSeconds,
      maxPackageBytes: config.maxPackageBytes,
      dictionaryRoutes: config.dictionaryRoutes,
      admission,
      tls,
      ...loadProtos(config),
    });
    const hybridPort = await hybrid.listen().catch((err: Error) => {
      throw new Error(`hybrid connector: ${err.message}`, { cause: err });
    });
    cleanup.unshift(() => hybrid.close());

    const sio = new SioConnector({
      hub,
      log,
      host: config.host,
      port: config.sioPort,
      maxPayloadBytes: config.maxPackageBytes,
      enterTimeoutMs: config.handshakeTimeoutSeconds * 1000,
      admission,
      http: httpTimeouts,
      tls,
    });
    const sioPort = await sio.listen().catch((err: Error) => {
      throw new Error(`socket.io connector: ${err.message}`, { cause: err });
    });
    cleanup.unshift(() => sio.close());

    if (tlsCredentials) {
      log.info({ subject: tlsCredentials.subject, notAfter: new Date(tlsCredentials.notAfter).toISOString() }, 'TLS on for every listener');
      if (tlsCredentials.notAfter < Date.now()) {
        const notice = `the TLS certificate expired on ${new Date(tlsCredentials.notAfter).toISOString()}: clients will refuse it (docs/tls.md)`;
        notices.push(notice);
        log.warn(notice);
      }
    }
    let mqtt: MqttConnector | undefined = new MqttConnector({
      hub,
      log,
      host: config.host,
      port: config.mqttPort ?? defaultMqttPort,
      maxPacketBytes: config.maxPackageBytes,
      connectTimeoutMs: config.handshakeTimeoutSeconds * 1000,
      admission,
      tls,
    });
    let mqttPort: number | undefined;
    try {
      mqttPort = await mqtt.listen();
      const started = mqtt;
      cleanup.unshift(() => started.close());
    } catch (err) {
      const inUse = (err as { cause?: { code?: string } }).cause?.code === 'EADDRINUSE';
      if (config.mqttPort !== undefined || !inUse) {
        throw new Error(`MQTT connector: ${(err as Error).message}`, { cause: err });
      }
      // The default port is taken (often by a local Mosquitto): run without MQTT, and say so.
      mqtt = undefined;
      const notice = `MQTT is off: the default port ${defaultMqttPort} is in use; set --mqtt-port to another port`;
      notices.push(notice);
      log.warn({ port: defaultMqttPort }, notice);
    }

    // ntfy (docs/ntfy.md): its topics are tags of one app; scheduled messages in a store of their own.
    const ntfyApp = await resolveNtfyApp(storage, config);
    const scheduled: ScheduledStore = redis ? await openRedisScheduledStore({ ...redis, logger: log }) : openSqliteScheduledStore(databasePath(config));
    cleanup.unshift(() => scheduled.close());
    let ntfy: NtfyConnector | undefined = new NtfyConnector({
      hub,
      log,
      host: config.host,
      port: config.ntfyPort ?? defaultNtfyPort,
      apikey: ntfyApp.apikey,
      maxMessageBytes: config.ntfyMaxMessageBytes,
      keepAliveMs: config.ntfyKeepaliveSeconds * 1000,
      ...(config.ntfyBaseUrl !== undefined && { baseUrl: config.ntfyBaseUrl }),
      scheduled,
      previousSecret: (apikey: ApiKey, now: number) => storage.apps.previousSecret(apikey, now),
      admission,
      tls,
      timeouts: httpTimeouts,
    });
    let ntfyPort: number | undefined;
    try {
      ntfyPort = await ntfy.listen();
      const started = ntfy;
      cleanup.unshift(() => started.close());
    } catch (err) {
      const inUse = (err as { cause?: { code?: string } }).cause?.code === 'EADDRINUSE';
      if (config.ntfyPort !== undefined || !inUse) throw new Error(`ntfy connector: ${(err as Error).message}`, { cause: err });
      ntfy = undefined;
      const notice = `ntfy is off: the default port ${defaultNtfyPort} is in use; set --ntfy-port to another port`;
      notices.push(notice);
      log.warn({ port: defaultNtfyPort }, notice);
    }

    const ws = new WsConnector({ hub, log, maxFrameBytes: config.maxPackageBytes, enterTimeoutMs: config.handshakeTimeoutSeconds * 1000, admission });
    cleanup.unshift(() => ws.close());
    const sse = new SseConnector({ hub, log, admission });
    cleanup.unshift(() => sse.close());

    const ports = { hybridPort, sioPort, mqttPort: mqttPort ?? null, ntfyPort: ntfyPort ?? null, httpPort: 0 };
    const http = buildHttpApi({
      loginLimiter,
      pushRate: admission,
      metrics,
      ...(config.metricsToken !== undefined ? { metricsToken: config.metricsToken } : {}),
      hub,
      storage,
      log,
      bodyLimit: config.maxHttpBodyBytes,
      defaultMessageTtlSeconds: config.defaultMessageTtlSeconds,
      health: () => ({ node: nodeId, ports, tls: tls !== undefined }),
      tls,
      secureCookies: tls !== undefined,
      sse: (req, res, apikey, clientId) => sse.handle(req, res, apikey, clientId),
      // The API port's listener: its door counts every connection, and connections on
      // the descriptor reserve may only ask for health, metrics and an admin login.
      serverFactory: (handler) => createHttpListener(handler, { name: 'http', timeouts: httpTimeouts, tls, log, admission, reserve: reservedRequest }),
    });
    http.server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      const reserved = reserveRefusal(req.socket);
      if (reserved !== undefined) {
        refuseUpgrade(socket, reserved);
        return;
      }
      ws.handleUpgrade(req, socket, head);
    });
    await http.listen({ host: config.host, port: config.httpPort, backlog: LISTEN_BACKLOG }).catch((err: NodeJS.ErrnoException) => {
      const why = err.code === 'EADDRINUSE' ? `port ${config.httpPort} on ${config.host} is already in use` : err.message;
      throw new Error(`HTTP API: ${why}`, { cause: err });
    });
    cleanup.unshift(() => http.close());
    const address = http.server.address();
    ports.httpPort = typeof address === 'object' && address !== null ? address.port : config.httpPort;

    // Expired messages are swept; storage stays bounded.
    const sweep = setInterval(() => {
      storage.messages.sweepExpired(Date.now()).then((n) => observer.expired(n), (err: unknown) => log.warn({ err }, 'expiry sweep failed'));
    }, 60_000);
    sweep.unref();

    let closing: Promise<void> | undefined;
    let closingStep: string | undefined;
    const step = async (name: string, work: () => Promise<unknown> | unknown): Promise<void> => {
      closingStep = name;
      await work();
    };
    return {
      config,
      nodeId,
      log,
      storage,
      hub,
      http,
      hybrid,
      sio,
      mqtt,
      ntfy,
      ntfyPort,
      ntfyApp,
      ws,
      sse,
      httpPort: ports.httpPort,
      hybridPort,
      sioPort,
      mqttPort,
      notices,
      firstStart,
      get closingStep() {
        return closingStep;
      },
      close() {
        closing ??= (async () => {
          clearInterval(sweep);
          await step('kicking connections', () =>
            Promise.all([
              hybrid.close(CLOSE_REASONS.shutdown),
              sio.close(CLOSE_REASONS.shutdown),
              mqtt?.close(CLOSE_REASONS.shutdown),
              ntfy?.close(CLOSE_REASONS.shutdown),
              ws.close(CLOSE_REASONS.shutdown),
              sse.close(CLOSE_REASONS.shutdown),
            ]),
          );
          await step('closing the HTTP API', () => http.close());
          await step('closing the hub', () => hub.close());
          admission.close();
          await step('leaving the cluster presence', () => presence?.close());
          await step('closing the bus', () => bus.close());
          await step('closing the scheduled messages', () => scheduled.close());
          await step('closing the store', () => storage.close());
          closingStep = undefined;
        })();
        return closing;
      },
    };
  } catch (err) {
    for (const step of cleanup) await step().catch(() => undefined);
    throw err;
  }
}

/** First start: an admin account and a demo app, so there is something to try. */
async function bootstrap(storage: Storage, config: Config): Promise<FirstStart | undefined> {
  const admins = await storage.admins.listAdmins();
  if (admins.length > 0) return undefined;
  const generated = config.adminPassword === undefined ? randomBytes(12).toString('base64url') : undefined;
  await storage.admins.setAdminPassword(DEFAULT_ADMIN, config.adminPassword ?? generated ?? '');
  const apps = await storage.apps.listApps();
  const demoApp =
    apps.length === 0
      ? await storage.apps.createApp({ name: 'demo', messageTtlSeconds: config.defaultMessageTtlSeconds })
      : undefined;
  return { adminUsername: DEFAULT_ADMIN, generatedAdminPassword: generated, demoApp };
}

/** The ntfy app: `ntfyApp` (which must exist), else the app named `ntfy`, created when there is none. */
async function resolveNtfyApp(storage: Storage, config: Config): Promise<App> {
  if (config.ntfyApp !== undefined) {
    const app = await storage.apps.getApp(config.ntfyApp as ApiKey);
    if (!app) throw new Error(`ntfy connector: no app with apikey "${config.ntfyApp}" (--ntfy-app)`);
    return app;
  }
  const existing = (await storage.apps.listApps()).find((a) => a.name === 'ntfy');
  if (existing) return existing;
  // The access settings belong to the app (PATCH /api/v1/apps/:apikey); the config keys
  // ntfyAnonymousAccess and ntfyTokensCanPublish are only the values the app starts with.
  const created = await storage.apps.createApp({ name: 'ntfy', messageTtlSeconds: config.defaultMessageTtlSeconds });
  const updated = await storage.apps.updateApp(created.apikey, {
    ntfyAnonymousAccess: config.ntfyAnonymousAccess,
    ntfyTokensCanPublish: config.ntfyTokensCanPublish,
  });
  return updated ?? created;
}

function loadProtos(config: Config): { protos?: { server: ParsedProtos; client: ParsedProtos } } {
  if (config.serverProtosFile === undefined && config.clientProtosFile === undefined) return {};
  const read = (path: string | undefined): ParsedProtos => {
    if (path === undefined) return parseProtos({});
    try {
      return parseProtos(JSON.parse(readFileSync(path, 'utf8')));
    } catch (err) {
      throw new Error(`cannot load protos from ${path}: ${(err as Error).message}`, { cause: err });
    }
  };
  return { protos: { server: read(config.serverProtosFile), client: read(config.clientProtosFile) } };
}
