'use strict';
/**
 * Peer: a plain socket.io 4 room broadcast, as an app would write it. A client emits
 * `enter` {apikey, clientId} with an ack; the server joins it to room "all" and acks
 * {code: 200}. `POST /push {"data":…}` does `io.to('all').emit('onMsg', {msg, id})`
 * (socket.io encodes a room broadcast once). WebSocket transport and polling both on,
 * no per-message acks, no storage.
 *
 *   node bench/peers/sio-broadcast.cjs --port N [--host 127.0.0.1]
 * Prints `READY {"port":N}` when listening.
 */
const http = require('node:http');
const { peerRequire, parseFlags, readBody } = require('./resolve.cjs');

const { Server } = peerRequire('socket.io');
const flags = parseFlags(process.argv.slice(2));
const host = flags.host || '127.0.0.1';
const port = Number(flags.port || 0);
let seq = 0;

// engine.io takes /socket.io/ requests and hands every other request to this handler.
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
    io.to('all').emit('onMsg', { msg: body.data, id });
    res.writeHead(202, { 'content-type': 'application/json' }).end(`{"id":${id}}`);
  });
});
const io = new Server(server, { serveClient: false, transports: ['polling', 'websocket'], perMessageDeflate: false });

io.on('connection', (socket) => {
  socket.on('enter', (body, ack) => {
    socket.join('all');
    if (typeof ack === 'function') ack({ code: 200, msg: 'add ok' });
  });
});

server.listen(port, host, () => {
  process.stdout.write(`READY ${JSON.stringify({ port: server.address().port })}\n`);
});
process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));
