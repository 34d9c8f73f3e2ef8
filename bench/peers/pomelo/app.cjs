'use strict';
/**
 * Peer: Pomelo 2.2.7 as its users ran it — one frontend "connector" server with the
 * hybrid connector (TCP and WebSocket on one port; we measure WebSocket, since
 * 2.2.7's TCP write path breaks on Node 20), JSON bodies, no dictionary, heartbeat
 * 25 s, and a channel push: `POST /push {"data":…}` on --http-port does
 * `channel.pushMessage('onMsg', {msg: data, id})` to channel "all".
 *
 *   BENCH_PEERS_DIR=/path/with/node_modules node bench/peers/pomelo/app.cjs \
 *     --port CLIENT_PORT --rpc-port N --http-port N [--heartbeat 25]
 * Prints `READY {"port":N,"httpPort":N}` once started.
 *
 * Run standalone, without a master: the connector is started directly with the
 * arguments a master gives the servers it starts, and its monitor component (the
 * admin link to the master, not on the push path) is replaced by a stub — without a
 * master the real one never finishes starting. One process, so its CPU and memory
 * are the server's. The app's base folder (config/, the handler) is generated in a
 * temporary folder, since Pomelo reads its ports from config files.
 */
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const http = require('node:http');
const { createRequire } = require('node:module');
const { peerRequire, requireBeside, parseFlags, readBody } = require('../resolve.cjs');

const flags = parseFlags(process.argv.slice(2));
const host = flags.host || '127.0.0.1';
const clientPort = Number(flags.port);
const rpcPort = Number(flags['rpc-port']);
const httpPort = Number(flags['http-port']);
const heartbeat = Number(flags.heartbeat || 25);
if (!clientPort || !rpcPort || !httpPort) {
  process.stderr.write('usage: app.cjs --port N --rpc-port N --http-port N [--heartbeat S]\n');
  process.exit(2);
}

shimOldBufferUtil();
const pomelo = peerRequire('pomelo');
const pomeloLogger = requireBeside('pomelo')('pomelo-logger');

/**
 * Pomelo's ws 1.1.1 does `require('bufferutil').BufferUtil` (the bufferutil 1.x API).
 * Where a modern bufferutil 4 is installed beside it (Shaddock depends on one), that
 * is undefined and every masked frame throws. bufferutil 4's `mask`/`unmask` have the
 * 1.x signatures, so give ws 1.1.1 that: the native path, as its users had it.
 */
function shimOldBufferUtil() {
  const Module = require('node:module');
  const pomeloRequire = requireBeside('pomelo');
  const wsEntry = pomeloRequire.resolve('ws');
  const wsDir = path.dirname(wsEntry);
  const wsPkg = JSON.parse(fs.readFileSync(path.join(wsDir, 'package.json'), 'utf8'));
  if (!/^1\./.test(wsPkg.version)) return;
  const target = path.join(wsDir, 'lib', 'BufferUtil.js');
  let exported;
  try {
    const bu = createRequire(target)('bufferutil');
    exported = bu.BufferUtil ? bu : { BufferUtil: { mask: bu.mask, unmask: bu.unmask } };
  } catch {
    exported = require(path.join(wsDir, 'lib', 'BufferUtil.fallback.js'));
  }
  const m = new Module(target);
  m.filename = target;
  m.loaded = true;
  m.exports = exported;
  require.cache[target] = m;
}

// The base folder Pomelo reads: config/*.json and app/servers/connector/handler/.
const base = fs.mkdtempSync(path.join(os.tmpdir(), 'pomelo-peer-'));
const server = { id: 'connector-server-1', host, port: rpcPort, clientHost: host, clientPort, frontend: true };
const write = (rel, text) => {
  fs.mkdirSync(path.dirname(path.join(base, rel)), { recursive: true });
  fs.writeFileSync(path.join(base, rel), text);
};
write('config/master.json', JSON.stringify({ production: { id: 'master-server-1', host, port: rpcPort + 1 } }));
write('config/servers.json', JSON.stringify({ production: { connector: [server] } }));
write('config/log4js.json', JSON.stringify({ appenders: [{ type: 'console' }], levels: { '[all]': 'ERROR' }, replaceConsole: false }));
write('app/servers/connector/handler/entryHandler.js', fs.readFileSync(path.join(__dirname, 'entryHandler.cjs')));
const cleanup = () => fs.rmSync(base, { recursive: true, force: true });
process.on('exit', cleanup);

// What a master passes to the servers it starts (pomelo lib/master/starter.js).
process.argv = [
  process.argv[0],
  path.join(base, 'app.js'),
  'env=production',
  `id=${server.id}`,
  `host=${host}`,
  `port=${rpcPort}`,
  `clientHost=${host}`,
  `clientPort=${clientPort}`,
  'frontend=true',
  'serverType=connector',
];

// Pomelo defines its components as getters on the module; this one is only the admin link.
Object.defineProperty(pomelo, 'monitor', {
  configurable: true,
  enumerable: true,
  get: () =>
    function monitorStub() {
      return {
        name: '__monitor__',
        start: (cb) => process.nextTick(cb),
        afterStart: (cb) => process.nextTick(cb),
        stop: (_force, cb) => process.nextTick(cb),
        reconnect: () => {},
      };
    },
});

const app = pomelo.createApp({ base });
app.set('name', 'shaddock-bench-pomelo');
app.configureLogger(pomeloLogger);
app.configure('production', 'connector', () => {
  app.set('connectorConfig', {
    connector: pomelo.connectors.hybridconnector,
    heartbeat,
    useDict: false,
    useProtobuf: false,
    disconnectOnTimeout: true,
    distinctHost: true,
  });
});

let seq = 0;
function push(data, cb) {
  const id = ++seq;
  const channel = app.get('channelService').getChannel('all', true);
  channel.pushMessage('onMsg', { msg: data, id }, (err) => cb(err || null, id));
}
app.set('benchPush', push);

app.start((err) => {
  if (err) {
    process.stderr.write(`pomelo failed to start: ${err.stack || err}\n`);
    process.exit(1);
  }
  const api = http.createServer((req, res) => {
    if (req.method !== 'POST' || req.url !== '/push') {
      res.writeHead(404).end();
      return;
    }
    readBody(req, 1 << 20, (e, body) => {
      if (e || body === null || typeof body !== 'object' || !('data' in body)) {
        res.writeHead(400).end('{"error":"bad body"}');
        return;
      }
      push(body.data, (perr, id) => {
        // An empty channel is "all uids push message fail" in Pomelo; still accepted.
        res.writeHead(202, { 'content-type': 'application/json' }).end(`{"id":${id}${perr ? ',"note":"no members"' : ''}}`);
      });
    });
  });
  api.listen(httpPort, host, () => {
    process.stdout.write(`READY ${JSON.stringify({ port: clientPort, httpPort })}\n`);
  });
});

process.on('uncaughtException', (err) => {
  process.stderr.write(`pomelo peer: ${err.stack || err}\n`);
});
process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));
