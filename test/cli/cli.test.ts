import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PomeloClient } from '../fixtures/pomelo-client.js';
import { startTestServer, type TestServer } from '../fixtures/test-server.js';
import { startCli, stopCli } from '../fixtures/cli-process.js';

const ROOT = new URL('../..', import.meta.url).pathname;
const CLI = join(ROOT, 'src/cli/index.ts');

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

function cli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', CLI, ...args], {
      cwd: ROOT,
      env: { ...process.env, SHADDOCK_DATA: '', SHADDOCK_CONFIG: '', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

const field = (banner: string, name: string): string => {
  const m = new RegExp(`^\\s+${name}\\s+(\\S+)`, 'm').exec(banner);
  assert.ok(m?.[1], `banner has ${name}: ${banner}`);
  return m[1];
};

describe('CLI', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'shaddock-cli-'));
  const started: ChildProcess[] = [];
  after(() => {
    // A failed assertion must not leave a server running (it would hold the test run open).
    for (const child of started) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('app create --json, list, rotate-secret and delete work without a server', async () => {
    const created = await cli(['app', 'create', 'mobile', '--data', dataDir, '--json', '--ttl', '600']);
    assert.equal(created.code, 0, created.stderr);
    const app = JSON.parse(created.stdout) as { apikey: string; secret: string };
    assert.match(app.apikey, /^[0-9a-f-]{36}$/);
    assert.ok(app.secret.length >= 43);

    const list = await cli(['app', 'list', '--json'], { SHADDOCK_DATA: dataDir });
    assert.equal(list.code, 0, list.stderr);
    const apps = JSON.parse(list.stdout) as { apikey: string; messageTtlSeconds: number }[];
    assert.equal(apps.find((a) => a.apikey === app.apikey)?.messageTtlSeconds, 600);

    const rotated = await cli(['app', 'rotate-secret', app.apikey, '--data', dataDir, '--json']);
    assert.equal(rotated.code, 0, rotated.stderr);
    assert.notEqual((JSON.parse(rotated.stdout) as { secret: string }).secret, app.secret);

    const human = await cli(['app', 'list', '--data', dataDir]);
    assert.match(human.stdout, new RegExp(`${app.apikey}\\s+mobile`));

    const missing = await cli(['app', 'rotate-secret', 'nope', '--data', dataDir]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /no app with apikey "nope"/);

    const deleted = await cli(['app', 'delete', app.apikey, '--data', dataDir]);
    assert.equal(deleted.code, 0, deleted.stderr);

    const noDb = await cli(['app', 'list', '--data', join(dataDir, 'nothing-here')]);
    assert.equal(noDb.code, 1);
    assert.match(noDb.stderr, /no database/);
  });

  describe('with a running server', () => {
    let t: TestServer;
    before(async () => {
      t = await startTestServer();
    });
    after(async () => {
      await t.close();
    });

    it('an app created by the CLI while the server runs is usable at once', async () => {
      const created = await cli(['app', 'create', 'live', '--data', t.dataDir, '--json']);
      assert.equal(created.code, 0, created.stderr);
      const app = JSON.parse(created.stdout) as { apikey: string; secret: string };
      const c = await PomeloClient.connect({ host: '127.0.0.1', port: t.server.hybridPort, transport: 'tcp' });
      try {
        const res = await c.request('connector.entryHandler.enter', { apikey: app.apikey, clientId: 'x', role: 'client' });
        assert.deepEqual(res, { code: 200, msg: 'add ok' });
        const got = c.waitFor('onMsg');
        const pushed = await cli(['push', '--url', t.httpUrl, '--app', app.apikey, '--secret', app.secret, '--to', 'x', '--payload', '{"title":"t","msg":"来自 CLI"}']);
        assert.equal(pushed.code, 0, pushed.stderr);
        assert.match(pushed.stdout, /accepted: message 1, 1 client\(s\) targeted/);
        assert.deepEqual(((await got)[0] as { msg: unknown }).msg, { title: 't', msg: '来自 CLI' });
      } finally {
        await c.close();
      }
    });

    it('push fails clearly: wrong secret, bad JSON, nothing listening, no message', async () => {
      const wrong = await cli(['push', '--url', t.httpUrl, '--app', t.app.apikey, '--secret', 'bad', 'hi']);
      assert.equal(wrong.code, 1);
      assert.match(wrong.stderr, /push refused \(401\): wrong app secret/);
      const badJson = await cli(['push', '--url', t.httpUrl, '--app', t.app.apikey, '--secret', t.app.secret, '--payload', '{nope']);
      assert.equal(badJson.code, 1);
      assert.match(badJson.stderr, /--payload is not valid JSON/);
      const nothing = await cli(['push', '--url', 'http://127.0.0.1:1', '--app', t.app.apikey, '--secret', t.app.secret, 'hi']);
      assert.equal(nothing.code, 1);
      assert.match(nothing.stderr, /cannot reach http:\/\/127\.0\.0\.1:1/);
      const none = await cli(['push', '--url', t.httpUrl, '--app', t.app.apikey, '--secret', t.app.secret]);
      assert.equal(none.code, 1);
      assert.match(none.stderr, /either a MESSAGE or --payload/);
      const ok = await cli(['push', '--url', t.httpUrl, '--app', t.app.apikey, '--secret', t.app.secret, '--json', 'hello']);
      assert.equal(ok.code, 0, ok.stderr);
      assert.equal(typeof (JSON.parse(ok.stdout) as { id: unknown }).id, 'number');
    });
  });

  it('start: first start prints admin, demo app and a push command; Ctrl-C kicks clients; a restart keeps the apps', async () => {
    const dir = join(dataDir, 'start');
    const first = await startCli(['--data', dir, '--host', '127.0.0.1', '--http-port', '0', '--hybrid-port', '0', '--sio-port', '0', '--mqtt-port', '0', '--ntfy-port', '0']);
    started.push(first.child);
    assert.match(first.banner, /First start: admin account "admin", password \S+/);
    const apikey = field(first.banner, 'apikey');
    const secret = field(first.banner, 'secret');
    assert.match(first.banner, /curl -X POST http:\/\/127\.0\.0\.1:\d+\/api\/v1\/apps\/[0-9a-f-]+\/messages/);
    const hybridPort = Number(/tcp:\/\/127\.0\.0\.1:(\d+)/.exec(first.banner)?.[1]);
    const httpUrl = /HTTP API\s+(\S+)/.exec(first.banner)?.[1] ?? '';

    const c = await PomeloClient.connect({ host: '127.0.0.1', port: hybridPort, transport: 'tcp' });
    await c.request('connector.entryHandler.enter', { apikey, clientId: 'device', role: 'client' });
    const res = await fetch(`${httpUrl}/api/v1/apps/${apikey}/messages`, {
      method: 'POST',
      headers: { authorization: `Bearer ${secret}`, 'content-type': 'application/json' },
      body: JSON.stringify({ data: 'kept' }),
    });
    assert.equal(res.status, 202);
    const kicked = c.waitFor('kick');
    const stopped = stopCli(first, 'SIGINT');
    assert.equal((await kicked)[0], 'server shutting down');
    assert.equal(await stopped, 0);

    const second = await startCli(['--data', dir, '--host', '127.0.0.1', '--http-port', '0', '--hybrid-port', '0', '--sio-port', '0', '--mqtt-port', '0', '--ntfy-port', '0']);
    started.push(second.child);
    assert.doesNotMatch(second.banner, /First start/);
    const list = await cli(['app', 'list', '--json', '--data', dir]);
    const apps = JSON.parse(list.stdout) as { apikey: string; secret: string; name: string }[];
    // The demo app, and the app whose tags are ntfy's topics (docs/ntfy.md), created once.
    assert.deepEqual(apps.filter((a) => a.name !== 'ntfy').map((a) => [a.apikey, a.secret]), [[apikey, secret]]);
    assert.equal(apps.filter((a) => a.name === 'ntfy').length, 1);
    const httpUrl2 = /HTTP API\s+(\S+)/.exec(second.banner)?.[1] ?? '';
    const again = await fetch(`${httpUrl2}/api/v1/apps/${apikey}/messages`, {
      method: 'POST',
      headers: { authorization: `Bearer ${secret}`, 'content-type': 'application/json' },
      body: JSON.stringify({ data: 'after restart' }),
    });
    assert.equal(again.status, 202);
    assert.equal(((await again.json()) as { id: number }).id, 2, 'message ids continue across restarts');
    assert.equal(await stopCli(second), 0);
  });

  it('start refuses a port in use with a clear message', async () => {
    const t = await startTestServer();
    try {
      const res = await cli(['start', '--data', join(dataDir, 'busy'), '--host', '127.0.0.1', '--http-port', String(t.server.httpPort), '--hybrid-port', '0', '--sio-port', '0', '--mqtt-port', '0', '--ntfy-port', '0']);
      assert.equal(res.code, 1);
      assert.match(res.stderr, /HTTP API: port \d+ on 127\.0\.0\.1 is already in use/);
    } finally {
      await t.close();
    }
  });

  it('start refuses invalid configuration with the setting named', async () => {
    const res = await cli(['start', '--http-port', '99999', '--data', join(dataDir, 'bad')]);
    assert.equal(res.code, 1);
    assert.match(res.stderr, /invalid configuration "httpPort"/);
  });
});
