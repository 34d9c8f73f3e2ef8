import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { loadConfig } from '../src/config.js';
import { startServer } from '../src/server.js';

async function occupiedPort(): Promise<{ port: number; close: () => Promise<void> }> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  return { port, close: () => new Promise((r) => server.close(() => r())) };
}

describe('startServer listeners', () => {
  const base = { host: '127.0.0.1', httpPort: 0, hybridPort: 0, sioPort: 0, logLevel: 'silent', adminPassword: 'password-123' };

  it('runs without MQTT, and says so, when the default MQTT port is taken', async () => {
    const taken = await occupiedPort();
    const dataDir = mkdtempSync(join(tmpdir(), 'shaddock-srv-'));
    try {
      const server = await startServer(loadConfig({ env: {}, flags: { ...base, dataDir } }), { defaultMqttPort: taken.port });
      assert.equal(server.mqtt, undefined);
      assert.equal(server.mqttPort, undefined);
      assert.match(server.notices.join('\n'), new RegExp(`MQTT is off: the default port ${taken.port} is in use`));
      await server.close();
    } finally {
      await taken.close();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('refuses to start when an explicitly set port is taken, naming it, and leaves nothing open', async () => {
    const taken = await occupiedPort();
    const dataDir = mkdtempSync(join(tmpdir(), 'shaddock-srv-'));
    try {
      await assert.rejects(
        startServer(loadConfig({ env: {}, flags: { ...base, dataDir, mqttPort: taken.port } })),
        new RegExp(`MQTT connector: port ${taken.port} on 127.0.0.1 is already in use`),
      );
      await assert.rejects(
        startServer(loadConfig({ env: {}, flags: { ...base, dataDir, mqttPort: 0, ntfyPort: 0, sioPort: taken.port } })),
        /socket.io connector: port \d+ on 127.0.0.1 is already in use/,
      );
    } finally {
      await taken.close();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
