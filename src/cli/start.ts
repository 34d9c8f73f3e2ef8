import type { Command } from 'commander';
import { databasePath, loadConfig } from '../config.js';
import { startServer, type ShaddockServer } from '../server.js';
import { VERSION } from '../version.js';
import { intOption, print } from './output.js';

interface StartOptions {
  config?: string;
  data?: string;
  host?: string;
  httpPort?: number;
  hybridPort?: number;
  sioPort?: number;
  mqttPort?: number;
  ntfyPort?: number;
  ntfyApp?: string;
  heartbeat?: number;
  logLevel?: string;
  redis?: string;
  redisPrefix?: string;
  nodeId?: string;
  nodeTimeout?: number;
  tlsCert?: string;
  tlsKey?: string;
  tlsCa?: string;
}

export function addStartCommand(program: Command): void {
  program
    .command('start')
    .description('start a Shaddock node (embedded default: one process, SQLite under ./data)')
    .option('--config <file>', 'JSON config file (also SHADDOCK_CONFIG)')
    .option('--data <dir>', 'data folder holding shaddock.db (also SHADDOCK_DATA)')
    .option('--host <addr>', 'address to listen on (also SHADDOCK_HOST)')
    .option('--http-port <n>', 'HTTP API port, default 3001 (also SHADDOCK_HTTP_PORT)', intOption('--http-port'))
    .option('--hybrid-port <n>', 'Pomelo hybrid connector port, default 3011 (also SHADDOCK_HYBRID_PORT)', intOption('--hybrid-port'))
    .option('--sio-port <n>', 'socket.io connector port, default 3010 (also SHADDOCK_SIO_PORT)', intOption('--sio-port'))
    .option('--mqtt-port <n>', 'MQTT port, default 1883, skipped when taken unless set (also SHADDOCK_MQTT_PORT)', intOption('--mqtt-port'))
    .option('--ntfy-port <n>', 'ntfy port, default 2586, skipped when taken unless set (also SHADDOCK_NTFY_PORT)', intOption('--ntfy-port'))
    .option('--ntfy-app <apikey>', 'app whose tags are the ntfy topics; default: the app named ntfy (also SHADDOCK_NTFY_APP)')
    .option('--heartbeat <seconds>', 'Pomelo heartbeat interval, default 25 (also SHADDOCK_HEARTBEAT)', intOption('--heartbeat'))
    .option('--redis <url>', 'cluster mode: store, bus and presence on Redis (also SHADDOCK_REDIS_URL)')
    .option('--redis-prefix <prefix>', 'key prefix, default shaddock: (also SHADDOCK_REDIS_PREFIX)')
    .option('--node-id <name>', 'this node\'s name in the cluster (also SHADDOCK_NODE_ID)')
    .option('--node-timeout <seconds>', 'cluster: a silent node is dead after this, default 15 (also SHADDOCK_NODE_TIMEOUT)', intOption('--node-timeout'))
    .option('--tls-cert <file>', 'PEM certificate: every port speaks TLS (also SHADDOCK_TLS_CERT)')
    .option('--tls-key <file>', 'PEM private key of --tls-cert (also SHADDOCK_TLS_KEY)')
    .option('--tls-ca <file>', 'intermediate certificates sent after --tls-cert (also SHADDOCK_TLS_CA)')
    .option('--log-level <level>', 'fatal|error|warn|info|debug|trace|silent (also SHADDOCK_LOG_LEVEL)')
    .action(async (opts: StartOptions) => {
      const config = loadConfig({
        ...(opts.config !== undefined ? { configFile: opts.config } : {}),
        flags: {
          dataDir: opts.data,
          host: opts.host,
          httpPort: opts.httpPort,
          hybridPort: opts.hybridPort,
          sioPort: opts.sioPort,
          mqttPort: opts.mqttPort,
          ntfyPort: opts.ntfyPort,
          ntfyApp: opts.ntfyApp,
          heartbeatSeconds: opts.heartbeat,
          logLevel: opts.logLevel,
          redisUrl: opts.redis,
          redisPrefix: opts.redisPrefix,
          nodeId: opts.nodeId,
          nodeTimeoutSeconds: opts.nodeTimeout,
          tlsCertFile: opts.tlsCert,
          tlsKeyFile: opts.tlsKey,
          tlsCaFile: opts.tlsCa,
        },
      });
      const server = await startServer(config);
      // Before the banner: its last line says Ctrl-C works, and scripts signal as soon as
      // they read it. A signal in between would find no handler and kill the process.
      handleSignals(server);
      printBanner(server);
    });
}

function printBanner(server: ShaddockServer): void {
  const host = server.config.host === '0.0.0.0' || server.config.host === '::' ? '127.0.0.1' : server.config.host;
  // With TLS every port speaks it only: show the schemes clients must use.
  const tls = server.config.tlsCertFile !== undefined;
  const [http, ws, tcp, mqtt] = tls ? ['https', 'wss', 'tls', 'mqtts'] : ['http', 'ws', 'tcp', 'mqtt'];
  const api = `${http}://${host}:${server.httpPort}`;
  print(`Shaddock ${VERSION} is running`);
  print(`  HTTP API        ${api}   (WebSocket ${ws}://${host}:${server.httpPort}/ws, SSE …/clients/ID/events)`);
  print(`  Pomelo hybrid   ${tcp}://${host}:${server.hybridPort}  ${ws}://${host}:${server.hybridPort}`);
  print(`  socket.io       ${http}://${host}:${server.sioPort}/socket.io`);
  print(`  MQTT            ${server.mqttPort !== undefined ? `${mqtt}://${host}:${server.mqttPort}` : 'off'}`);
  print(`  ntfy            ${server.ntfyPort !== undefined ? `${http}://${host}:${server.ntfyPort}  (topics of app ${server.ntfyApp.apikey})` : 'off'}`);
  const redisUrl = server.config.redisUrl;
  if (redisUrl !== undefined) {
    print(`  cluster         node ${server.nodeId} on ${redactUrl(redisUrl)} (prefix ${server.config.redisPrefix})`);
  } else {
    print(`  database        ${databasePath(server.config)}`);
  }
  for (const notice of server.notices) print(`  note: ${notice}`);
  const first = server.firstStart;
  if (first) {
    print();
    if (first.generatedAdminPassword !== undefined) {
      print(`First start: admin account "${first.adminUsername}", password ${first.generatedAdminPassword}`);
      print('  (shown once; set SHADDOCK_ADMIN_PASSWORD on first start to choose it)');
    } else {
      print(`First start: admin account "${first.adminUsername}" with the password from SHADDOCK_ADMIN_PASSWORD`);
    }
    const app = first.demoApp;
    if (app) {
      print();
      print(`Demo app "${app.name}"`);
      print(`  apikey  ${app.apikey}`);
      print(`  secret  ${app.secret}`);
      print();
      print('Push to every client of the demo app:');
      print(
        `  curl -X POST ${api}/api/v1/apps/${app.apikey}/messages -H 'Authorization: Bearer ${app.secret}' ` +
          `-H 'content-type: application/json' -d '{"data":{"title":"hello","msg":"world"}}'`,
      );
      print(`  npx shaddock push --url ${api} --app ${app.apikey} --secret ${app.secret} 'hello world'`);
    }
  }
  print();
  // The last line of the banner: scripts wait for it.
  print('Ready. Press Ctrl-C to stop.');
}

/** A Redis URL without its password, for the banner. */
function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password !== '') u.password = '***';
    return u.toString();
  } catch {
    return url;
  }
}

/**
 * How long a shutdown may take before the process exits anyway. Every accepted message
 * is already in the store, so exiting early loses nothing; it only skips the rest of
 * the goodbyes (kicks, the cluster presence cleanup, which then times out instead).
 */
export const SHUTDOWN_TIMEOUT_MS = 10_000;

function handleSignals(server: ShaddockServer): void {
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) {
      process.stderr.write('shaddock: forced exit\n');
      process.exit(1);
    }
    stopping = true;
    server.log.info({ signal }, 'shutting down');
    setTimeout(() => {
      server.log.error({ step: server.closingStep, timeoutMs: SHUTDOWN_TIMEOUT_MS }, `shutdown did not finish within ${SHUTDOWN_TIMEOUT_MS / 1000} s (stuck ${server.closingStep ?? 'after closing'}); exiting`);
      process.exit(1);
    }, SHUTDOWN_TIMEOUT_MS).unref();
    server.close().then(
      () => process.exit(0),
      (err: unknown) => {
        server.log.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}
