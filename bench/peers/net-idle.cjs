'use strict';
/**
 * Peer: the floor of what Node costs per idle connection — a bare `net` server that
 * accepts sockets, reads and discards what they send, and holds them. Nothing else:
 * no protocol, no per-connection object beyond the socket. The idle scenario measures
 * its RSS per connection beside Shaddock's (issue #7: hybrid TCP and MQTT ≤ 1.25× it).
 *
 *   node bench/peers/net-idle.cjs --port N [--host 127.0.0.1]
 * Prints `READY {"port":N}` when listening.
 */
const net = require('node:net');
const { parseFlags } = require('./resolve.cjs');

const flags = parseFlags(process.argv.slice(2));
const host = flags.host || '127.0.0.1';
const port = Number(flags.port || 0);

function discard() {}
function destroyOnError() {
  this.destroy();
}

const server = net.createServer((socket) => {
  socket.on('data', discard);
  socket.on('error', destroyOnError);
});
server.listen(port, host, () => {
  process.stdout.write(`READY ${JSON.stringify({ port: server.address().port })}\n`);
});
process.on('SIGTERM', () => process.exit(0));
