// The ntfy listener's port, as MQTT's: the default taken → start without it and say so;
// a port set explicitly and taken → the start fails, naming it.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../../src/config.js';
import { startServer } from '../../../src/server.js';
import { once } from '../../fixtures/wait.js';

describe('ntfy listener port', () => {
  it('default port taken: the node starts without ntfy and says so; set explicitly: the start fails', async () => {
    const taken = createServer();
    taken.listen(0, '127.0.0.1');
    await once(taken, 'listening', 2000);
    const port = (taken.address() as AddressInfo).port;
    const dataDir = mkdtempSync(join(tmpdir(), 'shaddock-ntfy-port-'));
    const flags = { dataDir, host: '127.0.0.1', httpPort: 0, hybridPort: 0, sioPort: 0, mqttPort: 0, logLevel: 'silent', adminPassword: 'test-admin-password' };
    try {
      const server = await startServer(loadConfig({ env: {}, flags }), { defaultNtfyPort: port });
      assert.equal(server.ntfy, undefined);
      assert.equal(server.ntfyPort, undefined);
      assert.ok(server.notices.some((n) => n.includes(`ntfy is off: the default port ${port} is in use`)), server.notices.join('\n'));
      assert.equal(server.ntfyApp.name, 'ntfy', 'the app exists all the same');
      const off = (await (await fetch(`http://127.0.0.1:${server.httpPort}/healthz`)).json()) as { ports: Record<string, unknown> };
      assert.equal(off.ports['ntfyPort'], null, '/healthz says the ntfy port is off');
      await server.close();
      // Listening: /healthz names its port beside the others.
      const on = await startServer(loadConfig({ env: {}, flags: { ...flags, ntfyPort: 0 } }));
      try {
        const health = (await (await fetch(`http://127.0.0.1:${on.httpPort}/healthz`)).json()) as { ports: Record<string, unknown> };
        assert.equal(health.ports['ntfyPort'], on.ntfyPort);
      } finally {
        await on.close();
      }
      await assert.rejects(startServer(loadConfig({ env: {}, flags: { ...flags, ntfyPort: port } })), /ntfy connector: port \d+ on 127\.0\.0\.1 is already in use/);
      // --ntfy-app names an app that must exist.
      await assert.rejects(startServer(loadConfig({ env: {}, flags: { ...flags, ntfyPort: 0, ntfyApp: 'no-such-app' } })), /no app with apikey "no-such-app"/);
      // Env and config file keys parse (SHADDOCK_NTFY_PORT, …).
      const c = loadConfig({ env: { SHADDOCK_NTFY_PORT: '2600', SHADDOCK_NTFY_ANONYMOUS_ACCESS: 'read-only', SHADDOCK_NTFY_MAX_MESSAGE_BYTES: '8192' } });
      assert.deepEqual([c.ntfyPort, c.ntfyAnonymousAccess, c.ntfyMaxMessageBytes], [2600, 'read-only', 8192]);
      assert.throws(() => loadConfig({ env: { SHADDOCK_NTFY_ANONYMOUS_ACCESS: 'everyone' } }), /ntfyAnonymousAccess/);
    } finally {
      taken.close();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
