import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { databasePath, heartbeatTimeoutSeconds, type Config } from './config.js';
import { createLogger, type Logger } from './log.js';
import type { App, Storage } from './store/store.js';
import { openSqliteStorage } from './store/sqlite-storage.js';
import { LocalBus } from './bus/local-bus.js';
import { Hub } from './hub/hub.js';
import { CLOSE_REASONS } from './hub/connection.js';
import { HybridConnector } from './connectors/hybrid/hybrid-connector.js';
import { parseProtos, type ParsedProtos } from './protocol/pomelo/protobuf.js';
import { buildHttpApi, type HttpApi } from './api/http-api.js';

/** What the first start created, to show the user once. */
export interface FirstStart {
  readonly adminUsername: string;
  /** Present only when we generated it (not given in config/env). */
  readonly generatedAdminPassword: string | undefined;
  readonly demoApp: App | undefined;
}

export interface ShaddockServer {
  readonly config: Config;
  readonly log: Logger;
  readonly storage: Storage;
  readonly hub: Hub;
  readonly http: HttpApi;
  readonly hybrid: HybridConnector;
  readonly httpPort: number;
  readonly hybridPort: number;
  readonly firstStart: FirstStart | undefined;
  /** Kicks every connection with a reason, stops listening, closes the database. */
  close(): Promise<void>;
}

export const DEFAULT_ADMIN = 'admin';

/**
 * Builds a node from its config: the only module that picks implementations and
 * imports every layer.
 */
export async function startServer(config: Config, opts: { readonly log?: Logger } = {}): Promise<ShaddockServer> {
  const log = opts.log ?? createLogger(config.logLevel);
  const storage = openSqliteStorage(databasePath(config));
  const cleanup: (() => Promise<void>)[] = [() => storage.close()];
  try {
    const firstStart = await bootstrap(storage, config);
    const bus = new LocalBus();
    cleanup.unshift(() => bus.close());
    const hub = new Hub({ storage, bus, logger: log, maxBufferedBytes: config.maxBufferedBytes });

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
      ...loadProtos(config),
    });
    const hybridPort = await hybrid.listen().catch((err: Error) => {
      throw new Error(`hybrid connector: ${err.message}`, { cause: err });
    });
    cleanup.unshift(() => hybrid.close());

    const ports = { hybridPort, httpPort: 0 };
    const http = buildHttpApi({
      hub,
      storage,
      log,
      bodyLimit: config.maxHttpBodyBytes,
      defaultMessageTtlSeconds: config.defaultMessageTtlSeconds,
      health: () => ({ ports }),
    });
    await http.listen({ host: config.host, port: config.httpPort }).catch((err: NodeJS.ErrnoException) => {
      const why = err.code === 'EADDRINUSE' ? `port ${config.httpPort} on ${config.host} is already in use` : err.message;
      throw new Error(`HTTP API: ${why}`, { cause: err });
    });
    cleanup.unshift(() => http.close());
    const address = http.server.address();
    ports.httpPort = typeof address === 'object' && address !== null ? address.port : config.httpPort;

    // Expired messages are swept; storage stays bounded.
    const sweep = setInterval(() => {
      storage.messages.sweepExpired(Date.now()).catch((err: unknown) => log.warn({ err }, 'expiry sweep failed'));
    }, 60_000);
    sweep.unref();

    let closing: Promise<void> | undefined;
    return {
      config,
      log,
      storage,
      hub,
      http,
      hybrid,
      httpPort: ports.httpPort,
      hybridPort,
      firstStart,
      close() {
        closing ??= (async () => {
          clearInterval(sweep);
          await hybrid.close(CLOSE_REASONS.shutdown);
          await http.close();
          await bus.close();
          await storage.close();
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
