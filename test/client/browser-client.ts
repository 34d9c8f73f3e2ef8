// Run by test/client/sdk.test.ts with `node --experimental-websocket`: the SDK's browser
// entry with its default transport (globalThis.WebSocket, a WHATWG WebSocket as in
// browsers). Prints each message as a JSON line. Args: URL APIKEY CLIENT_ID.
import { ShaddockClient, memoryStore } from '../../src/client/index.js';

const [url, apikey, clientId] = process.argv.slice(2);
if (typeof (globalThis as { WebSocket?: unknown }).WebSocket !== 'function') throw new Error('no global WebSocket');
const client = new ShaddockClient({ urls: url!, apikey: apikey!, clientId: clientId!, store: memoryStore() });
client.on('message', (m) => {
  process.stdout.write(`${JSON.stringify(m)}\n`);
});
client.on('error', (e) => process.stderr.write(`${e.code} ${e.message}\n`));
await client.connect();
process.stdout.write('connected\n');
process.on('SIGTERM', () => void client.close());
