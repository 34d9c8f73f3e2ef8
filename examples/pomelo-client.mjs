// A Pomelo client in Node built on the reference codec (npm i pomelo-protocol ws).
// Usage: APIKEY=… node examples/pomelo-client.mjs [ws://127.0.0.1:3011] [clientId]
import WebSocket from 'ws';
import protocol from 'pomelo-protocol';

const { Package, Message, strencode, strdecode } = protocol;
const url = process.argv[2] ?? 'ws://127.0.0.1:3011';
const clientId = process.argv[3] ?? 'node-1';
const ws = new WebSocket(url);
const send = (type, body) => ws.send(Package.encode(type, body));
let heartbeat = 25;

ws.on('open', () => send(Package.TYPE_HANDSHAKE, strencode(JSON.stringify({ sys: { type: 'js-websocket', version: '0.0.1' } }))));
ws.on('message', (data) => {
  const pkg = Package.decode(data);
  if (pkg.type === Package.TYPE_HANDSHAKE) {
    const reply = JSON.parse(strdecode(pkg.body));
    if (reply.code !== 200) throw new Error(`handshake refused: ${reply.code}`);
    heartbeat = reply.sys.heartbeat ?? heartbeat;
    send(Package.TYPE_HANDSHAKE_ACK);
    const body = strencode(JSON.stringify({ apiKey: process.env.APIKEY, clientId, role: 'client' }));
    send(Package.TYPE_DATA, Message.encode(1, Message.TYPE_REQUEST, 0, 'connector.entryHandler.enter', body));
  } else if (pkg.type === Package.TYPE_HEARTBEAT) {
    setTimeout(() => send(Package.TYPE_HEARTBEAT), heartbeat * 1000).unref();
  } else if (pkg.type === Package.TYPE_DATA) {
    const msg = Message.decode(pkg.body);
    const body = JSON.parse(strdecode(msg.body));
    if (msg.type === Message.TYPE_RESPONSE) console.log('entered', JSON.stringify(body));
    else console.log('push', msg.route, JSON.stringify(body));
  } else if (pkg.type === Package.TYPE_KICK) {
    console.log('kicked', strdecode(pkg.body));
  }
});
ws.on('close', () => process.exit(0));
