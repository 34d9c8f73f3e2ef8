'use strict';
/**
 * Peer: the bare minimum a WebSocket broadcast can cost. `ws` 8 with no extensions;
 * a client sends `{"type":"enter",…}` and joins the broadcast set (answered
 * `{"type":"entered"}`, as Shaddock's /ws does); `POST /push {"data":…}` builds the
 * frame `{"type":"message","id":N,"event":"onMsg","data":…}` once and writes the same
 * bytes to every socket. No storage, no acks, no per-client state beyond the socket.
 *
 *   node bench/peers/ws-broadcast.cjs --port N [--host 127.0.0.1]
 * Prints `READY {"port":N}` when listening.
 */
const http = require('node:http');
const { peerRequire, parseFlags, readBody } = require('./resolve.cjs');

const ws = peerRequire('ws');
const flags = parseFlags(process.argv.slice(2));
const host = flags.host || '127.0.0.1';
const port = Number(flags.port || 0);

const members = new Set();
let seq = 0;

const server = http.createServer((req, res) => {
  if (req.method !== 'POST' || req.url !== '/push') {
    res.writeHead(404).end();
    return;
  }
  readBody(req, 1 << 20, (err, body) => {
    if (err || body === null || typeof body !== 'object' || !('data' in body)) {
      res.writeHead(400).end('{"error":"bad body"}');
      return;
    }
    const id = ++seq;
    const json = Buffer.from(`{"type":"message","id":${id},"event":"onMsg","data":${JSON.stringify(body.data)}}`);
    // One frame for everyone: header + payload, unmasked (server to client).
    const parts = ws.Sender.frame(json, { fin: true, rsv1: false, opcode: 1, mask: false, readOnly: true });
    const frame = parts.length === 1 ? parts[0] : Buffer.concat(parts);
    let n = 0;
    for (const sock of members) {
      sock._socket.write(frame);
      n++;
    }
    res.writeHead(202, { 'content-type': 'application/json' }).end(`{"id":${id},"targeted":${n}}`);
  });
});

const wss = new ws.WebSocketServer({ server, path: '/ws', perMessageDeflate: false, clientTracking: false });
wss.on('connection', (sock) => {
  sock.on('message', (data, isBinary) => {
    if (isBinary) return;
    if (String(data).includes('"enter"') && !members.has(sock)) {
      members.add(sock);
      sock.send('{"type":"entered"}');
    }
  });
  sock.on('close', () => members.delete(sock));
  sock.on('error', () => members.delete(sock));
});

server.listen(port, host, () => {
  process.stdout.write(`READY ${JSON.stringify({ port: server.address().port })}\n`);
});
process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));
